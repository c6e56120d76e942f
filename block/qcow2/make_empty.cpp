// make_empty (qemu-img commit): the active L1 table is cleared, then every
// cluster it reached loses that reference (freed unless a snapshot keeps
// it), so the image reads through to its backing file again. Snapshots
// stay as they are.
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::make_empty()
{
    if (read_only() || m_snapshot_loaded)
        co_return Error{ErrorKind::PermissionDenied, "Block node is read-only", EPERM};
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    std::vector<uint64_t> refs = CO_TRY(co_await tree_clusters(m_l1));
    (void)CO_TRY(co_await plan_refcount_delta(refs, -1));
    CO_TRY(co_await flush_covering(m_write_seq));
    std::vector<uint64_t> old = m_l1;
    std::fill(m_l1.begin(), m_l1.end(), 0);
    auto w = co_await write_l1_table();
    if (!w) {
        m_l1 = std::move(old);
        co_return std::move(w).error();
    }
    CO_TRY(co_await flush_covering(m_write_seq));
    std::vector<uint64_t> freed;
    CO_TRY(co_await apply_refcount_delta(std::move(refs), -1, &freed));
    co_await discard_freed(freed);
    co_return ok();
}

} // namespace kiln::block::qcow2
