// The dirty bit (incompatible feature 0): set for the whole of a
// read-write session on images with lazy_refcounts=on (as QEMU does on
// their first metadata change), and around snapshot operations on every
// v3 image. An image found dirty at open is checked and repaired
// (refcounts rebuilt) before use, in driver.cpp.
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
    co_return ok();
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
