// VirtioDevice: what a virtio device type (blk, ...) implements on top of
// the PCI transport. The transport owns feature negotiation, status,
// queues and interrupts; the device supplies features, config space and
// queue processing.
#pragma once

#include <cstdint>
#include <string>

#include "hw/virtio/virtqueue.h"

namespace kiln::hw {

class VirtioPci;

namespace virtio {
constexpr uint8_t k_status_acknowledge = 1, k_status_driver = 2, k_status_driver_ok = 4, k_status_features_ok = 8,
                  k_status_needs_reset = 0x40, k_status_failed = 0x80;
constexpr uint64_t k_f_indirect_desc = 1ull << 28, k_f_event_idx = 1ull << 29, k_f_version_1 = 1ull << 32;
} // namespace virtio

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;
    virtual uint16_t device_type() const = 0; // 2 = block
    virtual std::string device_name() const = 0;
    virtual uint64_t host_features() const = 0;
    virtual unsigned queue_count() const = 0;
    virtual uint16_t queue_max_size() const = 0;
    virtual unsigned config_bytes() const = 0;
    virtual void read_config(unsigned offset, uint8_t* out, unsigned bytes) = 0;
    virtual void write_config(unsigned offset, const uint8_t* in, unsigned bytes) = 0;
    // The driver kicked queue n (vCPU thread, machine lock held).
    virtual void queue_notify(unsigned n) = 0;
    // Status written 0: drop everything in progress.
    virtual void device_reset() = 0;
    // The VM continues after a werror/rerror=stop pause.
    virtual void resume() { }

    void set_transport(VirtioPci* t) { m_transport = t; }

protected:
    VirtioPci* m_transport = nullptr;
};

} // namespace kiln::hw
