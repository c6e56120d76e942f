// Metadata write-back and its ordering (see qcow2_node.h, "Crash safety").
//
// L2 tables and refcount blocks change in memory and are written later, in
// this order: refcount blocks, flush, L2 tables, flush. Pointer structures
// that are written at once (L1 entries, refcount table entries, the header)
// go through order_after_refcounts() first. So on disk a cluster's refcount
// is always in place before anything that points at it, and a commit
// happens on guest flush, on close, before refcounts are decremented and
// when a cache is full of dirty tables, not once per write. With
// lazy_refcounts=on the refcount ordering is dropped (lazy_refcounts.cpp).
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::order_after_refcounts()
{
    if (m_refcount_cache->dirty_count() && !refcounts_may_lag()) {
        CO_TRY(co_await m_refcount_cache->write_dirty());
        note_write();
    }
    // Covers the refcounts and whatever the caller wrote before (a new L2
    // table or L1 copy that the next pointer write makes reachable).
    CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

Task<Result<void>> Qcow2Node::commit_metadata()
{
    if (read_only())
        co_return ok();
    if (refcounts_may_lag())
        co_return co_await commit_metadata_lazy();
    CO_TRY(co_await order_after_refcounts());
    if (m_l2_cache->dirty_count()) {
        // order_after_refcounts flushed everything completed so far,
        // including the guest data the dirty entries map.
        CO_TRY(co_await m_l2_cache->write_dirty());
        note_write();
        CO_TRY(co_await flush_covering(m_write_seq));
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::commit_if_full()
{
    // Only when dirty tables kept a cache from evicting: a cache big enough
    // for all the tables in use never forces a commit.
    bool l2_full = m_l2_cache->over_capacity() && m_l2_cache->dirty_count();
    bool rc_full = m_refcount_cache->over_capacity() && m_refcount_cache->dirty_count();
    if (l2_full || rc_full)
        CO_TRY(co_await commit_metadata());
    co_return ok();
}

Task<Result<void>> Qcow2Node::flush()
{
    if (read_only())
        co_return co_await m_file->flush();
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    // Guest data written in place since the last flush.
    CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

} // namespace kiln::block::qcow2
