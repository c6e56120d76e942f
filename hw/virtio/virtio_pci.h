// VirtioPci: the virtio PCI transport, transitional: the modern 1.x
// interface (vendor capabilities for common config, notify, ISR and device
// config in a 64-bit memory BAR4) and the legacy 0.9.5 interface in I/O
// BAR0, with MSI-X (table and PBA in BAR1) and INTx as fallback.
//
// Guest mistakes in a queue (see virtqueue.h) set DEVICE_NEEDS_RESET,
// send a config interrupt, are logged once (LogCategory::Guest) and stop
// that queue; nothing the guest writes can end the process.
#pragma once

#include <memory>
#include <vector>

#include "hw/core/bus.h"
#include "hw/core/guest_memory.h"
#include "hw/core/irq.h"
#include "hw/core/msi.h"
#include "hw/core/vmstate.h"
#include "hw/pci/pci_bar.h"
#include "hw/pci/pci_device.h"
#include "hw/virtio/msix.h"
#include "hw/virtio/virtio_device.h"

namespace kiln::hw {

struct VirtioPciBuses {
    IoBus* pio = nullptr;
    IoBus* mmio = nullptr;
};

class VirtioPci final : public PciDevice, public DeviceState {
public:
    // Region layout inside BAR4 (QEMU's).
    static constexpr uint64_t k_common_offset = 0x0000, k_isr_offset = 0x1000, k_device_offset = 0x2000,
                              k_notify_offset = 0x3000, k_bar4_bytes = 0x4000;
    static constexpr uint32_t k_notify_multiplier = 4;

    VirtioPci(
        VirtioDevice& device, GuestMemory& memory, IrqLine& intx, MsiSink* msi, VirtioPciBuses buses, std::string name);
    std::string name() const override { return m_name; }
    void reset() override;
    void config_write(unsigned offset, unsigned size, uint32_t value) override;

    // For the device.
    GuestMemory& memory() { return m_memory; }
    Virtqueue& queue(unsigned n) { return m_queues[n]; }
    uint64_t driver_features() const { return m_driver_features; }
    bool has_feature(uint64_t bit) const { return m_driver_features & bit; }
    bool legacy() const { return !(m_driver_features & virtio::k_f_version_1); }
    bool driver_ok() const { return m_status & virtio::k_status_driver_ok; }
    uint8_t status() const { return m_status; }
    // Used buffers are ready on queue n: interrupt if the driver wants one.
    void notify_queue(unsigned n);
    // The guest broke queue n: DEVICE_NEEDS_RESET, one log line, queue stopped.
    void queue_error(unsigned n, const std::string& what);
    uint8_t isr() const { return m_isr; }
    // The device's configuration changed (e.g. block_resize): a config
    // interrupt for a driver that is up, as virtio 1.2 4.1.4.5 describes.
    void config_changed();
    MsixTable& msix() { return m_msix; }

    std::string state_name() const override { return m_name; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    uint64_t common_read(uint64_t offset, unsigned size);
    void common_write(uint64_t offset, unsigned size, uint64_t value);
    uint64_t legacy_read(uint64_t offset, unsigned size);
    void legacy_write(uint64_t offset, unsigned size, uint64_t value);
    uint64_t device_cfg_read(uint64_t offset, unsigned size);
    void device_cfg_write(uint64_t offset, unsigned size, uint64_t value);
    uint8_t read_isr();
    void set_status(uint8_t v);
    void reset_device();
    void update_msix_control();
    void raise_config_interrupt();
    void send_interrupt(uint16_t vector, uint8_t isr_bit);
    unsigned legacy_config_offset() const { return m_msix.enabled() ? 24 : 20; }
    void legacy_set_pfn(uint32_t pfn);

    VirtioDevice& m_device;
    GuestMemory& m_memory;
    IrqLine& m_intx;
    std::string m_name;
    std::vector<Virtqueue> m_queues;
    MsixTable m_msix;

    uint32_t m_device_feature_select = 0, m_driver_feature_select = 0;
    uint64_t m_driver_features = 0;
    uint16_t m_msix_config = 0xffff;
    uint8_t m_status = 0;
    uint8_t m_config_generation = 0;
    uint16_t m_queue_select = 0;
    uint8_t m_isr = 0;
    bool m_logged_error = false;

    FnRegion m_legacy_io, m_bar4_io;
    PciBars m_bars;
};

} // namespace kiln::hw
