// FileNode data path: reads, writes, flushes through the engine, with
// bounce buffers for requests O_DIRECT cannot take as they are.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <sys/uio.h>

#include "block/context.h"
#include "block/file/file_node.h"

namespace kiln::block {

namespace {

struct AlignedBuffer {
    void* data = nullptr;
    AlignedBuffer(size_t alignment, size_t bytes)
    {
        if (posix_memalign(&data, std::max<size_t>(alignment, sizeof(void*)), std::max<size_t>(bytes, 1)) != 0)
            data = nullptr;
    }
    ~AlignedBuffer() { std::free(data); }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    char* bytes() const { return static_cast<char*>(data); }
};

// Bytes covered by the first `max_segments` segments of an iovec list.
size_t bytes_in_segments(const std::vector<iovec>& iov, size_t max_segments)
{
    size_t total = 0;
    for (size_t i = 0; i < iov.size() && i < max_segments; ++i)
        total += iov[i].iov_len;
    return total;
}

} // namespace

bool FileNode::is_aligned(uint64_t offset, const QIov& qiov) const
{
    if (!m_direct)
        return true;
    if (offset % m_request_align || qiov.size() % m_request_align)
        return false;
    for (auto& seg : qiov.iovecs())
        if (reinterpret_cast<uintptr_t>(seg.iov_base) % m_mem_align || seg.iov_len % m_request_align)
            return false;
    return true;
}

Task<Result<void>> FileNode::do_io(IoOp op, uint64_t offset, const QIov& qiov)
{
    size_t total = qiov.size();
    size_t done = 0;
    while (done < total) {
        // The common case (whole request, few segments) submits the
        // caller's iovecs as they are; only retries and huge lists copy.
        QIov rest;
        const QIov* part = &qiov;
        if (done > 0 || qiov.count() > IOV_MAX) {
            rest = qiov.slice(done, total - done);
            if (rest.count() > IOV_MAX)
                rest = rest.slice(0, bytes_in_segments(rest.iovecs(), IOV_MAX));
            part = &rest;
        }
        Busy busy(m_busy);
        int64_t n = co_await m_engine->submit(op, m_fd, offset + done, part->iovecs().data(), part->count());
        if (n == -EINTR || n == -EAGAIN)
            continue;
        if (n < 0)
            co_return Error::from_errno(int(-n),
                std::string(op == IoOp::Read ? "Could not read from '" : "Could not write to '") + m_filename
                    + "' at offset " + std::to_string(offset + done));
        if (n == 0) {
            if (op == IoOp::Read) {
                // End of file: QEMU's file driver reads the rest as zeroes.
                qiov.fill(done, 0, total - done);
                co_return ok();
            }
            co_return Error::from_errno(ENOSPC, "Could not write to '" + m_filename + "'");
        }
        done += size_t(n);
        if (op == IoOp::Read && m_direct && done < total && done % m_request_align) {
            // A short, unaligned O_DIRECT read ends at EOF.
            qiov.fill(done, 0, total - done);
            co_return ok();
        }
    }
    co_return ok();
}

Task<Result<void>> FileNode::preadv(uint64_t offset, QIov qiov)
{
    if (qiov.empty())
        co_return ok();
    if (!is_aligned(offset, qiov))
        co_return co_await bounced_read(offset, std::move(qiov));
    co_return co_await do_io(IoOp::Read, offset, qiov);
}

Task<Result<void>> FileNode::bounced_read(uint64_t offset, QIov qiov)
{
    uint64_t align = m_request_align;
    uint64_t start = offset / align * align;
    uint64_t end = (offset + qiov.size() + align - 1) / align * align;
    AlignedBuffer buf(std::max<uint64_t>(m_mem_align, align), end - start);
    if (!buf.data)
        co_return Error::from_errno(ENOMEM, "Could not allocate a bounce buffer for '" + m_filename + "'");
    CO_TRY(co_await do_io(IoOp::Read, start, QIov(buf.data, end - start)));
    qiov.copy_in(0, buf.bytes() + (offset - start), qiov.size());
    co_return ok();
}

Task<Result<void>> FileNode::pwritev(uint64_t offset, QIov qiov, RequestFlags flags)
{
    if (read_only())
        co_return Error(ErrorKind::PermissionDenied, "Cannot write to read-only file '" + m_filename + "'", EPERM);
    if (qiov.empty())
        co_return ok();
    uint64_t end = offset + qiov.size();
    if (!is_aligned(offset, qiov)) {
        CO_TRY(co_await bounced_write(offset, std::move(qiov)));
    } else if (m_direct) {
        auto tracked = co_await track_write(offset, end, false);
        auto r = co_await do_io(IoOp::Write, offset, qiov);
        untrack_write(tracked);
        CO_TRY(std::move(r));
    } else {
        CO_TRY(co_await do_io(IoOp::Write, offset, qiov));
    }
    m_size_bytes = std::max(m_size_bytes, end);
    co_return co_await after_write(end, flags);
}

Task<Result<void>> FileNode::bounced_write(uint64_t offset, QIov qiov)
{
    uint64_t align = m_request_align;
    uint64_t len = qiov.size();
    uint64_t start = offset / align * align;
    uint64_t end = (offset + len + align - 1) / align * align;
    bool partial_head = offset != start;
    bool partial_tail = offset + len != end;
    AlignedBuffer buf(std::max<uint64_t>(m_mem_align, align), end - start);
    if (!buf.data)
        co_return Error::from_errno(ENOMEM, "Could not allocate a bounce buffer for '" + m_filename + "'");
    uint64_t old_size = m_size_bytes;
    auto tracked = co_await track_write(start, end, partial_head || partial_tail);
    Result<void> r = ok();
    // Read-modify-write of the blocks the caller's bytes only partly cover.
    if (partial_head)
        r = co_await do_io(IoOp::Read, start, QIov(buf.data, align));
    if (r && partial_tail && (end - align > start || !partial_head))
        r = co_await do_io(IoOp::Read, end - align, QIov(buf.bytes() + (end - align - start), align));
    if (r) {
        qiov.copy_out(0, buf.bytes() + (offset - start), len);
        r = co_await do_io(IoOp::Write, start, QIov(buf.data, end - start));
    }
    // Padding past the old end must not make the file longer than asked.
    if (r && end > old_size && end > offset + len && end > m_size_bytes) {
        if (::ftruncate(m_fd, off_t(std::max(old_size, offset + len))) != 0)
            r = Error::from_errno(errno, "Could not resize '" + m_filename + "'");
    }
    untrack_write(tracked);
    co_return r;
}

Task<std::list<FileNode::TrackedWrite>::iterator> FileNode::track_write(uint64_t start, uint64_t end, bool rmw)
{
    for (;;) {
        auto conflict = std::find_if(m_writes.begin(), m_writes.end(),
            [&](const TrackedWrite& w) { return (rmw || w.rmw) && w.start < end && start < w.end; });
        if (conflict == m_writes.end())
            break;
        co_await conflict->done->wait();
    }
    m_writes.push_back(TrackedWrite { start, end, rmw, std::make_unique<CoEvent>(context().loop()) });
    co_return std::prev(m_writes.end());
}

void FileNode::untrack_write(std::list<TrackedWrite>::iterator it)
{
    it->done->set();
    m_writes.erase(it);
}

Task<Result<void>> FileNode::after_write(uint64_t end, RequestFlags flags)
{
    if (m_no_flush || !(m_writethrough || has_flag(flags, RequestFlags::Fua)))
        co_return ok();
    co_return co_await flush();
}

Task<Result<void>> FileNode::flush()
{
    if (m_no_flush || read_only())
        co_return ok();
    ++m_host_flushes;
    for (;;) {
        Busy busy(m_busy);
        int64_t n = co_await m_engine->submit(IoOp::Flush, m_fd, 0, nullptr, 0);
        if (n == -EINTR)
            continue;
        if (n < 0)
            co_return Error::from_errno(int(-n), "Could not flush '" + m_filename + "'");
        co_return ok();
    }
}

Task<Result<void>> FileNode::write_zeroes_by_writing(uint64_t offset, uint64_t bytes)
{
    constexpr uint64_t chunk = 1 << 20;
    AlignedBuffer zeroes(std::max<uint32_t>(m_mem_align, 4096), chunk);
    if (!zeroes.data)
        co_return Error::from_errno(ENOMEM, "Could not allocate a zero buffer for '" + m_filename + "'");
    std::memset(zeroes.data, 0, chunk);
    while (bytes > 0) {
        uint64_t n = std::min(bytes, chunk);
        CO_TRY(co_await pwritev(offset, QIov(zeroes.data, n), RequestFlags::None));
        offset += n;
        bytes -= n;
    }
    co_return ok();
}

} // namespace kiln::block
