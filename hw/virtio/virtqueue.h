// A split virtqueue (virtio 1.x, 2.7) read and written only through the
// checked DMA API. Everything the guest controls is validated: ring
// indices that move too far, heads and next links outside the table,
// chains longer than the queue (loops), indirect tables of bad length or
// nested, buffers outside RAM or wrapping the address space. Any of these
// is a VirtqError: the device sets DEVICE_NEEDS_RESET and stops the queue.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <sys/uio.h>

#include "hw/core/guest_memory.h"
#include "hw/core/vmstate.h"
#include "util/result.h"

namespace kiln::hw {

// One buffer segment: guest address and the host span it maps to.
struct VirtqSegment {
    uint64_t gpa;
    uint8_t* host;
    uint32_t len;
};

// A popped request: device-readable then device-writable segments.
struct VirtqElement {
    uint16_t head = 0;
    std::vector<VirtqSegment> out, in;
    uint64_t out_bytes = 0, in_bytes = 0;
};

class Virtqueue {
public:
    static constexpr unsigned k_max_indirect = 1024;

    explicit Virtqueue(uint16_t max_size = 256)
        : m_max_size(max_size)
        , m_size(max_size)
    {
    }
    void reset();

    // Driver-programmed layout.
    uint16_t max_size() const { return m_max_size; }
    uint16_t size() const { return m_size; }
    void set_size(uint16_t n) { m_size = n; }
    uint64_t desc_addr = 0, avail_addr = 0, used_addr = 0;
    bool enabled = false;
    uint16_t msix_vector = 0xffff;
    // Set when the guest broke the ring; the queue is not processed again
    // until the device is reset.
    bool broken = false;

    // True if the size is a power of two (or any value for legacy) within max.
    bool valid_size(bool legacy) const;

    // Next available request, nullopt when the ring is empty.
    Result<std::optional<VirtqElement>> pop(GuestMemory& mem, bool indirect_ok, bool event_idx);
    // Returns the element's buffers with `written` bytes in the in-buffers.
    Result<void> push(GuestMemory& mem, const VirtqElement& e, uint32_t written);
    // Whether the driver wants an interrupt for what was pushed since the
    // last call (VIRTQ_AVAIL_F_NO_INTERRUPT or used_event with EVENT_IDX).
    Result<bool> should_notify(GuestMemory& mem, bool event_idx);
    uint16_t last_avail() const { return m_last_avail; }
    uint16_t used_idx() const { return m_used_idx; }

    void save(StateWriter& w) const;
    Result<void> load(StateReader& r);

private:
    Result<void> add_segment(GuestMemory& mem, VirtqElement& e, uint64_t addr, uint32_t len, bool writable);

    uint16_t m_max_size;
    uint16_t m_size;
    uint16_t m_last_avail = 0;
    uint16_t m_used_idx = 0;
    uint16_t m_signalled_used = 0;
    bool m_signalled_valid = false;
};

} // namespace kiln::hw
