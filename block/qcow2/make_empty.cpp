// make_empty (commit): every L2 entry of the active tree is cleared and the
// clusters it referenced lose that reference (freed unless a snapshot keeps
// them), so the image reads through to its backing file again. The L2
// tables themselves stay allocated (empty), which is a valid image.
//
// reopen: the monitor's commit writes into a backing image the drive opened
// read-only, so a qcow2 backing switches to read-write and back.
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::make_empty()
{
    if (read_only() || m_snapshot_loaded)
        co_return Error(ErrorKind::PermissionDenied, "Block node is read-only", EPERM);
    auto guard = co_await co_lock(m_meta_lock);
    for (uint64_t l1i = 0; l1i < m_l1.size(); ++l1i) {
        if (!(m_l1[l1i] & k_l1e_offset_mask))
            continue;
        TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
        std::vector<uint64_t> released;
        bool changed = false;
        for (uint64_t i = 0; i < m_l2_entries; ++i) {
            uint64_t e = l2_get(*table, i);
            if (e == 0 && l2_bitmap(*table, i) == 0)
                continue;
            ClusterType t = type_of(e);
            if (t == ClusterType::Normal || t == ClusterType::ZeroAlloc || t == ClusterType::Compressed)
                released.push_back(e);
            l2_set(*table, i, 0);
            if (m_ext_l2)
                store_be64(&table->data[i * m_l2_entry_bytes + 8], 0);
            changed = true;
        }
        if (!changed)
            continue;
        m_l2_cache->mark_dirty(*table, 0, m_l2_entries * m_l2_entry_bytes);
        if (!released.empty()) {
            // The cleared table reaches the disk before any refcount drops,
            // so no entry on disk points at a freed cluster.
            CO_TRY(co_await commit_metadata());
            for (uint64_t e : released)
                CO_TRY(co_await release_l2_entry(e));
        }
        CO_TRY(co_await commit_if_full());
    }
    CO_TRY(co_await commit_metadata());
    co_return ok();
}

Task<Result<void>> Qcow2Node::reopen(bool read_write)
{
    if (read_write == !read_only())
        co_return ok();
    if (!read_write) {
        CO_TRY(co_await flush());
        set_read_only(true);
        if (m_data_file)
            CO_TRY(co_await m_data_file->reopen(false));
        co_return co_await m_file->reopen(false);
    }
    if (m_snapshot_loaded)
        co_return Error::not_supported("Cannot write to an image with a snapshot loaded");
    if (m_header.incompatible_features & k_incompat_corrupt)
        co_return Error::invalid("qcow2: Image is corrupt; cannot be opened read/write");
    if (m_header.incompatible_features & k_incompat_dirty)
        co_return Error::not_supported("qcow2: Image has the dirty bit set; repair it before writing");
    CO_TRY(co_await m_file->reopen(true));
    if (m_data_file) {
        if (auto r = co_await m_data_file->reopen(true); !r) {
            (void)co_await m_file->reopen(false);
            co_return r;
        }
    }
    set_read_only(false);
    if (m_header.autoclear_features) {
        // As on a read-write open: Kiln keeps no autoclear structure up to
        // date, so the bits are cleared before the first write.
        m_header.autoclear_features = 0;
        auto guard = co_await co_lock(m_meta_lock);
        CO_TRY(co_await write_header());
        CO_TRY(co_await m_file->flush());
    }
    co_return ok();
}

} // namespace kiln::block::qcow2
