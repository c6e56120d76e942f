// The dirty bit (incompatible feature 0): set for the whole of a
// read-write session on images with lazy_refcounts=on (as QEMU does on
// their first metadata change), and around snapshot operations on every
// v3 image. An image found dirty at open is checked and repaired
// (refcounts rebuilt) before use, in driver.cpp. While the bit is on disk
// commits skip the refcount ordering (commit_metadata_lazy).
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::set_dirty_bit(bool dirty)
{
    // v2 has no dirty bit; there a crash mid-update is repaired by check.
    if (!m_v3)
        co_return ok();
    // A lazy-refcounts session keeps the bit until close.
    if (!dirty && m_lazy_dirty)
        co_return ok();
    uint64_t before = m_header.incompatible_features;
    if (dirty)
        m_header.incompatible_features |= k_incompat_dirty;
    else
        m_header.incompatible_features &= ~k_incompat_dirty;
    if (before == m_header.incompatible_features)
        co_return ok();
    // Setting: the bit must be on disk before the first metadata change.
    // Clearing: every change must be on disk before the bit goes; if the
    // clear itself is lost, the next open merely repairs a clean image.
    if (!dirty)
        CO_TRY(co_await commit_metadata());
    auto h = co_await write_header();
    if (!h) {
        m_header.incompatible_features = before;
        co_return std::move(h).error();
    }
    if (dirty)
        CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

Task<Result<void>> Qcow2Node::mark_dirty_if_lazy()
{
    if (m_lazy_dirty || !m_v3 || !(m_header.compatible_features & k_compat_lazy_refcounts)
        || (m_header.incompatible_features & k_incompat_dirty))
        co_return ok();
    CO_TRY(co_await set_dirty_bit(true));
    m_lazy_dirty = true;
    m_fresh_from_cluster = div_round_up(m_file->size_bytes(), m_cluster_size);
    co_return ok();
}

// QEMU drops the same dependency (qcow2_need_accurate_refcounts). Guest
// data still reaches the disk before L2 entries that map it unless
// data_order_for() showed that reading the clusters' old content instead
// would be indistinguishable: then one flush covers data, L2 tables and
// refcount blocks.
Task<Result<void>> Qcow2Node::commit_metadata_lazy()
{
    if (m_l2_cache->dirty_count()) {
        if (m_l2_cache->needs_data_order())
            CO_TRY(co_await flush_covering(m_write_seq));
        CO_TRY(co_await m_l2_cache->write_dirty());
        note_write();
    }
    if (m_refcount_cache->dirty_count()) {
        CO_TRY(co_await m_refcount_cache->write_dirty());
        note_write();
    }
    CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

DataOrder Qcow2Node::data_order_for(uint64_t host, uint64_t head_entry, uint64_t head_bytes, uint64_t tail_entry,
                                    uint64_t tail_bytes)
{
    // Extended L2 entries describe subclusters through a bitmap this check
    // does not read: keep the flush there.
    if (!m_lazy_dirty || encrypted() || m_data_file || (m_header.incompatible_features & k_incompat_extended_l2)
        || (host >> m_cluster_bits) < m_fresh_from_cluster)
        return DataOrder::Needed;
    bool backing = m_backing || !backing_file_name().empty();
    auto reads_zero = [&](uint64_t entry, uint64_t bytes) {
        if (bytes == 0)
            return true;
        ClusterType t = type_of(entry);
        return t == ClusterType::ZeroPlain || t == ClusterType::ZeroAlloc
               || (t == ClusterType::Unallocated && !backing);
    };
    return reads_zero(head_entry, head_bytes) && reads_zero(tail_entry, tail_bytes) ? DataOrder::NotNeeded
                                                                                    : DataOrder::Needed;
}

Task<Result<void>> Qcow2Node::mark_clean_on_close()
{
    if (!m_lazy_dirty)
        co_return ok();
    m_lazy_dirty = false;
    auto guard = co_await co_lock(m_meta_lock);
    co_return co_await set_dirty_bit(false);
}

} // namespace kiln::block::qcow2
