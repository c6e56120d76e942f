#include "hw/virtio/virtio_blk.h"

#include <cstring>

#include "hw/virtio/virtio_pci.h"

namespace kiln::hw {

using namespace virtio;

namespace {

constexpr unsigned k_sector = 512;

// [start, start+len) of a segment list as a QIov over guest RAM.
block::QIov slice(const std::vector<VirtqSegment>& segs, uint64_t start, uint64_t len)
{
    block::QIov q;
    uint64_t pos = 0;
    for (const auto& s : segs) {
        uint64_t a = std::max(pos, start), b = std::min(pos + s.len, start + len);
        if (a < b)
            q.add(s.host + (a - pos), size_t(b - a));
        pos += s.len;
    }
    return q;
}

void notify_written(GuestMemory& mem, const std::vector<VirtqSegment>& segs, uint64_t bytes)
{
    for (const auto& s : segs) {
        if (bytes == 0)
            break;
        uint64_t n = std::min<uint64_t>(bytes, s.len);
        mem.notify_written(s.gpa, n);
        bytes -= n;
    }
}

uint64_t le64(const uint8_t* p)
{
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
uint32_t le32(const uint8_t* p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

} // namespace

VirtioBlk::VirtioBlk(Drive& drive, const VirtioBlkConfig& cfg, const DeviceIoContext& io)
    : m_drive(drive)
    , m_cfg(cfg)
    , m_io(io)
{
    if (m_cfg.serial.size() > 20)
        m_cfg.serial.resize(20);
}

VirtioBlk::~VirtioBlk() { *m_alive = false; }

uint64_t VirtioBlk::host_features() const
{
    uint64_t f = k_f_size_max | k_f_seg_max | k_f_geometry | k_f_blk_size | k_f_flush | k_f_topology | k_f_discard
        | k_f_write_zeroes | k_f_indirect_desc | k_f_event_idx | k_f_version_1;
    if (m_drive.read_only())
        f |= k_f_ro;
    if (m_cfg.num_queues > 1)
        f |= k_f_mq;
    return f;
}

void VirtioBlk::read_config(unsigned offset, uint8_t* out, unsigned bytes)
{
    uint8_t c[60] = {};
    uint64_t capacity = m_drive.size_bytes() / k_sector;
    uint32_t size_max = 1u << 22, seg_max = m_cfg.queue_size - 2, blk_size = k_sector;
    std::memcpy(c + 0, &capacity, 8);
    std::memcpy(c + 8, &size_max, 4);
    std::memcpy(c + 12, &seg_max, 4);
    uint16_t cyl = uint16_t(std::min<uint64_t>(capacity / (16 * 63), 65535));
    std::memcpy(c + 16, &cyl, 2);
    c[18] = 16;
    c[19] = 63;
    std::memcpy(c + 20, &blk_size, 4);
    c[24] = 0; // physical_block_exp
    c[25] = 0; // alignment_offset
    uint16_t min_io = 1;
    std::memcpy(c + 26, &min_io, 2);
    uint32_t opt_io = 0;
    std::memcpy(c + 28, &opt_io, 4);
    c[32] = 1; // writeback
    uint16_t nq = uint16_t(m_cfg.num_queues);
    std::memcpy(c + 34, &nq, 2);
    uint32_t max_discard = k_max_discard_sectors, max_seg = k_max_discard_segments, align = 1;
    std::memcpy(c + 36, &max_discard, 4);
    std::memcpy(c + 40, &max_seg, 4);
    std::memcpy(c + 44, &align, 4);
    std::memcpy(c + 48, &max_discard, 4);
    std::memcpy(c + 52, &max_seg, 4);
    c[56] = m_drive.config().discard == DiscardMode::Unmap ? 1 : 0;
    if (offset < sizeof c)
        std::memcpy(out, c + offset, std::min<size_t>(bytes, sizeof c - offset));
}

void VirtioBlk::write_config(unsigned, const uint8_t*, unsigned)
{
    // Only `writeback` is writable in the spec, and only with CONFIG_WCE,
    // which is not offered.
}

void VirtioBlk::device_reset()
{
    // Requests in flight finish, but their completions are dropped.
    m_generation++;
}

void VirtioBlk::queue_notify(unsigned n)
{
    VirtioPci& t = *m_transport;
    Virtqueue& q = t.queue(n);
    bool indirect = t.has_feature(k_f_indirect_desc);
    bool event_idx = t.has_feature(k_f_event_idx);
    // At most one queue's worth per kick, so a guest that refills the ring
    // as fast as we drain it cannot keep the vCPU here forever.
    for (unsigned i = 0; i < q.size() && !q.broken; i++) {
        auto popped = q.pop(t.memory(), indirect, event_idx);
        if (!popped) {
            t.queue_error(n, popped.error().message());
            return;
        }
        if (!popped.value())
            return;
        VirtqElement& e = *popped.value();
        if (e.out_bytes < 16 || e.in_bytes < 1) {
            t.queue_error(n, "request without a 16-byte header or a status byte");
            return;
        }
        start(n, std::move(e));
    }
}

void VirtioBlk::start(unsigned queue, VirtqElement e)
{
    m_in_flight++;
    m_io.start(run(queue, m_generation, std::move(e)));
}

Task<std::pair<uint8_t, uint32_t>> VirtioBlk::execute(const VirtqElement& e, bool& stopped, std::function<void()> retry)
{
    uint8_t hdr[16];
    slice(e.out, 0, 16).copy_out(0, hdr, 16);
    uint32_t type = le32(hdr);
    uint64_t sector = le64(hdr + 8);
    uint64_t data_in = e.in_bytes - 1; // the last in-byte is the status
    uint64_t data_out = e.out_bytes - 16;
    uint64_t capacity = m_drive.size_bytes();
    auto in_range
        = [&](uint64_t bytes) { return sector <= capacity / k_sector && bytes <= capacity - sector * k_sector; };
    auto fail = [&](IoDirection dir, const Error& err) -> uint8_t {
        switch (m_drive.handle_error(dir, err, retry)) {
        case ErrorOutcome::Ignore:
            return k_s_ok;
        case ErrorOutcome::Stopped:
            stopped = true;
            return k_s_ioerr;
        case ErrorOutcome::Report:
            break;
        }
        return k_s_ioerr;
    };
    switch (type) {
    case k_t_in: {
        if (data_in % k_sector || !in_range(data_in))
            co_return std::pair<uint8_t, uint32_t> { k_s_ioerr, 0 };
        auto r = co_await m_drive.read(sector * k_sector, slice(e.in, 0, data_in));
        if (!r)
            co_return std::pair<uint8_t, uint32_t> { fail(IoDirection::Read, r.error()), uint32_t(data_in) };
        co_return std::pair<uint8_t, uint32_t> { k_s_ok, uint32_t(data_in) };
    }
    case k_t_out: {
        if (m_drive.read_only() || data_out % k_sector || !in_range(data_out))
            co_return std::pair<uint8_t, uint32_t> { k_s_ioerr, 0 };
        auto r = co_await m_drive.write(sector * k_sector, slice(e.out, 16, data_out));
        if (!r)
            co_return std::pair<uint8_t, uint32_t> { fail(IoDirection::Write, r.error()), 0 };
        co_return std::pair<uint8_t, uint32_t> { k_s_ok, 0 };
    }
    case k_t_flush: {
        auto r = co_await m_drive.flush();
        if (!r)
            co_return std::pair<uint8_t, uint32_t> { fail(IoDirection::Write, r.error()), 0 };
        co_return std::pair<uint8_t, uint32_t> { k_s_ok, 0 };
    }
    case k_t_get_id: {
        uint8_t id[20] = {};
        std::memcpy(id, m_cfg.serial.data(), std::min<size_t>(m_cfg.serial.size(), 20));
        uint64_t n = std::min<uint64_t>(data_in, 20);
        slice(e.in, 0, n).copy_in(0, id, size_t(n));
        co_return std::pair<uint8_t, uint32_t> { k_s_ok, uint32_t(n) };
    }
    case k_t_discard:
    case k_t_write_zeroes: {
        bool zeroes = type == k_t_write_zeroes;
        if (data_out == 0 || data_out % 16 || data_out / 16 > k_max_discard_segments)
            co_return std::pair<uint8_t, uint32_t> { k_s_unsupp, 0 };
        if (m_drive.read_only())
            co_return std::pair<uint8_t, uint32_t> { k_s_ioerr, 0 };
        std::vector<uint8_t> segs(data_out);
        slice(e.out, 16, data_out).copy_out(0, segs.data(), segs.size());
        for (size_t i = 0; i < segs.size(); i += 16) {
            uint64_t s = le64(&segs[i]);
            uint32_t n = le32(&segs[i + 8]);
            uint32_t flags = le32(&segs[i + 12]);
            if ((!zeroes && flags != 0) || (zeroes && (flags & ~1u)))
                co_return std::pair<uint8_t, uint32_t> { k_s_unsupp, 0 };
            if (n > k_max_discard_sectors || s > capacity / k_sector
                || uint64_t(n) * k_sector > capacity - s * k_sector)
                co_return std::pair<uint8_t, uint32_t> { k_s_ioerr, 0 };
            auto r = zeroes ? co_await m_drive.write_zeroes(s * k_sector, uint64_t(n) * k_sector, flags & 1)
                            : co_await m_drive.discard(s * k_sector, uint64_t(n) * k_sector);
            if (!r)
                co_return std::pair<uint8_t, uint32_t> { fail(IoDirection::Write, r.error()), 0 };
        }
        co_return std::pair<uint8_t, uint32_t> { k_s_ok, 0 };
    }
    default:
        co_return std::pair<uint8_t, uint32_t> { k_s_unsupp, 0 };
    }
}

Task<void> VirtioBlk::run(unsigned queue, uint32_t generation, VirtqElement e)
{
    std::weak_ptr<bool> alive = m_alive;
    bool stopped = false;
    auto retry = [this, queue, generation, e] { m_io.start(run(queue, generation, e)); };
    auto [status, written] = co_await execute(e, stopped, retry);
    auto lock = m_io.lock_machine();
    if (alive.expired())
        co_return;
    if (stopped)
        co_return; // retried when the VM continues; still in flight
    m_in_flight--;
    if (generation != m_generation || m_transport->queue(queue).broken)
        co_return;
    complete(queue, e, status, written);
}

void VirtioBlk::complete(unsigned queue, const VirtqElement& e, uint8_t status, uint32_t data_written)
{
    VirtioPci& t = *m_transport;
    // The status byte is the last byte of the last device-writable buffer.
    const VirtqSegment& last = e.in.back();
    last.host[last.len - 1] = status;
    t.memory().notify_written(last.gpa + last.len - 1, 1);
    notify_written(t.memory(), e.in, data_written);
    auto pushed = t.queue(queue).push(t.memory(), e, data_written + 1);
    if (!pushed) {
        t.queue_error(queue, pushed.error().message());
        return;
    }
    t.notify_queue(queue);
}

} // namespace kiln::hw
