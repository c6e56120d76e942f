#include "block/backend.h"

#include <cerrno>

#include "block/file/file_node.h"
#include "block/file/lock.h"

namespace kiln::block {

class BlockBackend::InFlight {
public:
    explicit InFlight(CoWaitGroup& group)
        : m_group(group)
        , m_start_ns(EventLoop::now_ns())
    {
        m_group.add();
    }
    ~InFlight() { m_group.done(); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    uint64_t elapsed_ns() const { return EventLoop::now_ns() - m_start_ns; }

private:
    CoWaitGroup& m_group;
    uint64_t m_start_ns;
};

BlockBackend::BlockBackend(EventLoop& loop, std::unique_ptr<BlockNode> root, BackendAccess access)
    : m_loop(loop)
    , m_root(std::move(root))
    , m_read_only(access == BackendAccess::ReadOnly || !m_root || m_root->read_only())
    , m_in_flight(loop)
{
}

BlockBackend::~BlockBackend() = default;

Result<void> BlockBackend::check_request(uint64_t offset, uint64_t bytes, bool write) const
{
    if (!m_root)
        return Error(ErrorKind::NotFound, "No medium inserted", ENOMEDIUM);
    if (write && m_read_only)
        return Error(ErrorKind::PermissionDenied, "Block node is read-only", EPERM);
    uint64_t size = m_root->size_bytes();
    if (offset > size || bytes > size - offset)
        return Error(ErrorKind::InvalidArgument,
            "Request at offset " + std::to_string(offset) + " of " + std::to_string(bytes)
                + " bytes is past the end of '" + m_root->filename() + "' (" + std::to_string(size) + " bytes)",
            EIO);
    return ok();
}

// Pushes a parent's "shared" set down the graph the way QEMU derives its
// children's permissions: raw passes it through, other formats never share
// write/resize of their own file, and a backing file may be written by
// others only if the parent tolerates changing data.
static Result<void> narrow_sharing(BlockNode* node, uint64_t shared)
{
    if (!node)
        return ok();
    if (auto* file = dynamic_cast<FileNode*>(node))
        return file->set_permissions(file->permissions(), file->shared_permissions() & shared);
    if (node->driver_name() == "raw")
        return narrow_sharing(node->file(), shared);
    TRY(narrow_sharing(node->file(), shared & ~uint64_t(k_perm_write | k_perm_resize)));
    TRY(narrow_sharing(node->data_file(), shared & ~uint64_t(k_perm_write | k_perm_resize)));
    uint64_t backing_shared = (shared & k_perm_write) ? uint64_t(k_perm_write | k_perm_resize) : 0;
    backing_shared |= k_perm_consistent_read | k_perm_write_unchanged | k_perm_graph_mod;
    return narrow_sharing(node->backing(), backing_shared);
}

Result<void> BlockBackend::apply_device_sharing(ShareWrite share_rw)
{
    uint64_t shared = k_perm_consistent_read | k_perm_write_unchanged;
    if (share_rw == ShareWrite::Yes)
        shared |= k_perm_write;
    // QEMU devices do not lock resize out (block_resize must work), and
    // graph-mod is not a lock byte any more: keep both shared.
    shared |= k_perm_resize | k_perm_graph_mod;
    return narrow_sharing(m_root.get(), shared);
}

Task<Result<void>> BlockBackend::read(uint64_t offset, QIov qiov)
{
    if (m_resume)
        co_await wait_while_quiesced();
    if (auto r = check_request(offset, qiov.size(), false); !r) {
        ++m_stats.invalid_rd_operations;
        co_return r;
    }
    InFlight guard(m_in_flight);
    uint64_t bytes = qiov.size();
    auto r = co_await m_root->preadv(offset, std::move(qiov));
    if (!r) {
        ++m_stats.failed_rd_operations;
        co_return r;
    }
    ++m_stats.rd_operations;
    m_stats.rd_bytes += bytes;
    m_stats.rd_total_time_ns += guard.elapsed_ns();
    co_return r;
}

Task<Result<void>> BlockBackend::write(uint64_t offset, QIov qiov, RequestFlags flags)
{
    if (m_resume)
        co_await wait_while_quiesced();
    if (auto r = check_request(offset, qiov.size(), true); !r) {
        ++m_stats.invalid_wr_operations;
        co_return r;
    }
    InFlight guard(m_in_flight);
    uint64_t bytes = qiov.size();
    auto r = co_await m_root->pwritev(offset, std::move(qiov), flags);
    if (!r) {
        ++m_stats.failed_wr_operations;
        co_return r;
    }
    ++m_stats.wr_operations;
    m_stats.wr_bytes += bytes;
    m_stats.wr_total_time_ns += guard.elapsed_ns();
    co_return r;
}

Task<Result<void>> BlockBackend::write_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    if (m_resume)
        co_await wait_while_quiesced();
    if (auto r = check_request(offset, bytes, true); !r) {
        ++m_stats.invalid_wr_operations;
        co_return r;
    }
    InFlight guard(m_in_flight);
    auto r = co_await m_root->pwrite_zeroes(offset, bytes, flags);
    if (!r) {
        ++m_stats.failed_wr_operations;
        co_return r;
    }
    // QEMU counts zero writes as writes of their length too.
    ++m_stats.wr_operations;
    ++m_stats.zero_operations;
    m_stats.wr_bytes += bytes;
    m_stats.wr_total_time_ns += guard.elapsed_ns();
    co_return r;
}

Task<Result<void>> BlockBackend::discard(uint64_t offset, uint64_t bytes)
{
    if (m_resume)
        co_await wait_while_quiesced();
    if (auto r = check_request(offset, bytes, true); !r) {
        ++m_stats.invalid_unmap_operations;
        co_return r;
    }
    InFlight guard(m_in_flight);
    auto r = co_await m_root->pdiscard(offset, bytes);
    if (!r) {
        ++m_stats.failed_unmap_operations;
        co_return r;
    }
    ++m_stats.unmap_operations;
    m_stats.unmap_bytes += bytes;
    m_stats.unmap_total_time_ns += guard.elapsed_ns();
    co_return r;
}

Task<Result<void>> BlockBackend::flush()
{
    if (m_resume)
        co_await wait_while_quiesced();
    if (!m_root) {
        ++m_stats.invalid_flush_operations;
        co_return Error(ErrorKind::NotFound, "No medium inserted", ENOMEDIUM);
    }
    InFlight guard(m_in_flight);
    auto r = co_await m_root->flush();
    if (!r) {
        ++m_stats.failed_flush_operations;
        co_return r;
    }
    ++m_stats.flush_operations;
    m_stats.flush_total_time_ns += guard.elapsed_ns();
    co_return r;
}

Task<void> BlockBackend::drain()
{
    while (m_in_flight.count() > 0)
        co_await m_in_flight.wait_idle();
}

Task<void> BlockBackend::quiesce()
{
    m_resume = std::make_unique<CoEvent>(m_loop);
    co_await drain();
}

void BlockBackend::end_quiesce()
{
    if (!m_resume)
        return;
    // Waiters are resumed from the loop and no longer touch the event.
    auto resume = std::move(m_resume);
    resume->set();
}

Task<void> BlockBackend::wait_while_quiesced()
{
    while (m_resume)
        co_await m_resume->wait();
}

Task<Result<void>> BlockBackend::close()
{
    co_await drain();
    if (!m_root)
        co_return ok();
    auto r = co_await m_root->close();
    m_root.reset();
    co_return r;
}

} // namespace kiln::block
