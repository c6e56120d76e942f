#include "hw/virtio/virtqueue.h"

#include <atomic>

namespace kiln::hw {

namespace {

constexpr uint16_t k_desc_next = 1, k_desc_write = 2, k_desc_indirect = 4;
constexpr uint16_t k_avail_no_interrupt = 1;

struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

Error ring_error(std::string what) { return Error::invalid(std::move(what)); }

} // namespace

void Virtqueue::reset()
{
    m_size = m_max_size;
    desc_addr = avail_addr = used_addr = 0;
    enabled = false;
    msix_vector = 0xffff;
    broken = false;
    m_last_avail = m_used_idx = m_signalled_used = 0;
    m_signalled_valid = false;
}

bool Virtqueue::valid_size(bool legacy) const
{
    if (m_size == 0 || m_size > m_max_size)
        return false;
    return legacy || (m_size & (m_size - 1)) == 0;
}

Result<void> Virtqueue::add_segment(GuestMemory& mem, VirtqElement& e, uint64_t addr, uint32_t len, bool writable)
{
    if (!writable && !e.in.empty())
        return ring_error("a device-readable descriptor follows a device-writable one");
    if (len == 0)
        return ok();
    if (addr + len < addr)
        return ring_error(
            "buffer at " + std::to_string(addr) + " of " + std::to_string(len) + " bytes wraps the address space");
    auto span = mem.host_span(addr, len);
    if (!span)
        return ring_error("buffer outside guest RAM: " + span.error().message());
    VirtqSegment seg { addr, span.value().data(), len };
    if (writable) {
        e.in.push_back(seg);
        e.in_bytes += len;
    } else {
        e.out.push_back(seg);
        e.out_bytes += len;
    }
    return ok();
}

Result<std::optional<VirtqElement>> Virtqueue::pop(GuestMemory& mem, bool indirect_ok, bool event_idx)
{
    if (!enabled || broken || m_size == 0)
        return std::optional<VirtqElement>();
    uint16_t avail_idx = TRY(mem.read_value<uint16_t>(avail_addr + 2));
    if (avail_idx == m_last_avail && event_idx) {
        // Ask for a kick at the next entry, then look again: the driver
        // may have added one before it saw our avail_event.
        TRY(mem.write_value<uint16_t>(used_addr + 4 + 8 * uint64_t(m_size), m_last_avail));
        std::atomic_thread_fence(std::memory_order_seq_cst);
        avail_idx = TRY(mem.read_value<uint16_t>(avail_addr + 2));
    }
    uint16_t pending = uint16_t(avail_idx - m_last_avail);
    if (pending > m_size)
        return ring_error("available index moved by " + std::to_string(pending) + ", more than the queue size "
            + std::to_string(m_size));
    if (pending == 0)
        return std::optional<VirtqElement>();
    std::atomic_thread_fence(std::memory_order_acquire);
    uint16_t head = TRY(mem.read_value<uint16_t>(avail_addr + 4 + 2 * uint64_t(m_last_avail % m_size)));
    if (head >= m_size)
        return ring_error(
            "head descriptor " + std::to_string(head) + " is outside the table of " + std::to_string(m_size));
    m_last_avail++;

    VirtqElement e;
    e.head = head;
    uint64_t table = desc_addr;
    unsigned table_size = m_size;
    unsigned i = head;
    unsigned count = 0;
    bool in_indirect = false;
    for (;;) {
        if (++count > table_size)
            return ring_error(
                "descriptor chain is longer than its table (" + std::to_string(table_size) + " entries): a loop");
        Desc d;
        uint64_t at = table + 16 * uint64_t(i);
        d.addr = TRY(mem.read_value<uint64_t>(at));
        d.len = TRY(mem.read_value<uint32_t>(at + 8));
        d.flags = TRY(mem.read_value<uint16_t>(at + 12));
        d.next = TRY(mem.read_value<uint16_t>(at + 14));
        if (d.flags & k_desc_indirect) {
            if (!indirect_ok)
                return ring_error("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
            if (in_indirect)
                return ring_error("nested indirect descriptor table");
            if (d.flags & k_desc_next)
                return ring_error("indirect descriptor with the NEXT flag");
            if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > k_max_indirect)
                return ring_error("indirect table of " + std::to_string(d.len)
                    + " bytes (must be a multiple of 16, "
                      "at most "
                    + std::to_string(k_max_indirect) + " entries)");
            if (d.addr + d.len < d.addr || !mem.host_span(d.addr, d.len))
                return ring_error("indirect table outside guest RAM");
            table = d.addr;
            table_size = d.len / 16;
            i = 0;
            count = 0;
            in_indirect = true;
            continue;
        }
        TRY(add_segment(mem, e, d.addr, d.len, d.flags & k_desc_write));
        if (!(d.flags & k_desc_next))
            break;
        i = d.next;
        if (i >= table_size)
            return ring_error(
                "next descriptor " + std::to_string(i) + " is outside the table of " + std::to_string(table_size));
    }
    return std::optional<VirtqElement>(std::move(e));
}

Result<void> Virtqueue::push(GuestMemory& mem, const VirtqElement& e, uint32_t written)
{
    uint64_t at = used_addr + 4 + 8 * uint64_t(m_used_idx % m_size);
    TRY(mem.write_value<uint32_t>(at, e.head));
    TRY(mem.write_value<uint32_t>(at + 4, written));
    std::atomic_thread_fence(std::memory_order_release);
    m_used_idx++;
    TRY(mem.write_value<uint16_t>(used_addr + 2, m_used_idx));
    return ok();
}

Result<bool> Virtqueue::should_notify(GuestMemory& mem, bool event_idx)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!event_idx) {
        uint16_t flags = TRY(mem.read_value<uint16_t>(avail_addr));
        return !(flags & k_avail_no_interrupt);
    }
    uint16_t used_event = TRY(mem.read_value<uint16_t>(avail_addr + 4 + 2 * uint64_t(m_size)));
    uint16_t old = m_signalled_used, now = m_used_idx;
    bool valid = m_signalled_valid;
    m_signalled_used = now;
    m_signalled_valid = true;
    if (!valid)
        return true;
    // vring_need_event(): did used_idx pass used_event since the last signal?
    return uint16_t(now - used_event - 1) < uint16_t(now - old);
}

void Virtqueue::save(StateWriter& w) const
{
    w.u16(m_size);
    w.u64(desc_addr);
    w.u64(avail_addr);
    w.u64(used_addr);
    w.boolean(enabled);
    w.u16(msix_vector);
    w.boolean(broken);
    w.u16(m_last_avail);
    w.u16(m_used_idx);
}

Result<void> Virtqueue::load(StateReader& r)
{
    m_size = TRY(r.u16());
    if (m_size > m_max_size)
        return r.invalid("queue size " + std::to_string(m_size) + " above the maximum");
    desc_addr = TRY(r.u64());
    avail_addr = TRY(r.u64());
    used_addr = TRY(r.u64());
    enabled = TRY(r.boolean());
    msix_vector = TRY(r.u16());
    broken = TRY(r.boolean());
    m_last_avail = TRY(r.u16());
    m_used_idx = TRY(r.u16());
    m_signalled_valid = false;
    return ok();
}

} // namespace kiln::hw
