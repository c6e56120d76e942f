// Truncate (grow, shrink) and preallocation.
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::preallocate(uint64_t offset, uint64_t bytes, PreallocMode mode)
{
    if (mode == PreallocMode::Off || bytes == 0)
        co_return ok();
    uint64_t end = offset + bytes;
    uint64_t guest = offset & ~(m_cluster_size - 1);
    while (guest < end) {
        auto guard = co_await co_lock(m_meta_lock);
        uint64_t l1i = l1_index(guest);
        uint64_t idx0 = l2_index(guest);
        TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
        uint64_t n = 0;
        while (idx0 + n < m_l2_entries && guest + n * m_cluster_size < end
               && type_of(l2_get(*table, idx0 + n)) == ClusterType::Unallocated)
            ++n;
        if (n == 0) {
            guest += m_cluster_size;
            continue;
        }
        // In an external data file a guest cluster lives at its own offset.
        uint64_t host = guest;
        if (!m_data_file)
            host = CO_TRY(co_await alloc_some_clusters(n, &n));
        uint64_t host_end = host + n * m_cluster_size;
        if (mode == PreallocMode::Full)
            CO_TRY(co_await data_node()->pwrite_zeroes(host, n * m_cluster_size, RequestFlags::None));
        if (!m_data_file && host_end > m_file->size_bytes())
            CO_TRY(co_await m_file->truncate(host_end, mode == PreallocMode::Falloc ? PreallocMode::Falloc
                                                       : mode == PreallocMode::Full ? PreallocMode::Full
                                                                                    : PreallocMode::Off,
                                             false));
        note_write();
        for (uint64_t i = 0; i < n; ++i)
            l2_set(*table, idx0 + i, (host + i * m_cluster_size) | k_oflag_copied);
        mark_l2_dirty(*table, idx0, n);
        CO_TRY(co_await commit_if_full());
        guest += n * m_cluster_size;
    }
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    CO_TRY(co_await m_file->flush());
    co_return ok();
}

Task<Result<void>> Qcow2Node::truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok)
{
    if (read_only() || m_snapshot_loaded)
        co_return Error{ErrorKind::PermissionDenied, "Block node is read-only", EPERM};
    if (new_size % 512)
        co_return Error::invalid("The new size must be a multiple of 512");
    if (new_size > k_max_image_bytes)
        co_return Error::invalid("Image is too big");
    uint64_t old_size = m_size;
    if (new_size == old_size)
        co_return ok();
    // v3 snapshots record their own disk size (snapshot_goto restores it).
    if (!m_snapshots.empty() && !m_v3)
        co_return Error::not_supported("Can't resize a v2 image which has snapshots");
    CO_TRY(check_bitmaps_resizable());
    if (new_size < old_size) {
        if (!shrink_ok)
            co_return Error::invalid("qcow2: shrinking requires the shrink option (--shrink)");
        if (prealloc != PreallocMode::Off)
            co_return Error::invalid("Preallocation can't be used for shrinking an image");
        // Free whole clusters past the new end (entries become unallocated).
        uint64_t from = align_up(new_size, m_cluster_size);
        uint64_t l1_first = from >> (m_cluster_bits + m_l2_bits);
        {
            auto guard = co_await co_lock(m_meta_lock);
            for (uint64_t l1i = l1_first; l1i < m_l1.size(); ++l1i) {
                if (!(m_l1[l1i] & k_l1e_offset_mask))
                    continue;
                uint64_t table_start = l1i << (m_cluster_bits + m_l2_bits);
                TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
                uint64_t idx0 = table_start >= from ? 0 : l2_index(from);
                std::vector<uint64_t> released;
                for (uint64_t i = idx0; i < m_l2_entries; ++i) {
                    uint64_t e = l2_get(*table, i);
                    if (e)
                        released.push_back(e);
                    l2_set(*table, i, 0);
                    l2_set_bitmap(*table, i, 0);
                }
                if (table_start >= from) {
                    // The whole table goes: unlink it from L1 first.
                    uint64_t l2_off = m_l1[l1i] & k_l1e_offset_mask;
                    uint64_t saved = m_l1[l1i];
                    m_l1[l1i] = 0;
                    auto w = co_await write_l1_entry(l1i);
                    if (!w) {
                        m_l1[l1i] = saved;
                        m_l2_cache->drop(l2_off);
                        co_return std::move(w).error();
                    }
                    CO_TRY(co_await flush_covering(m_write_seq));
                    m_l2_cache->drop(l2_off);
                    CO_TRY(co_await change_refcount(l2_off >> m_cluster_bits, -1));
                } else {
                    mark_l2_dirty(*table, idx0, m_l2_entries - idx0);
                    CO_TRY(co_await commit_metadata());
                }
                for (uint64_t e : released)
                    CO_TRY(co_await release_l2_entry(e));
            }
            m_header.size = new_size;
            auto r = co_await write_header();
            if (!r) {
                m_header.size = old_size;
                co_return std::move(r).error();
            }
            m_size = new_size;
            resize_bitmaps();
            CO_TRY(co_await m_file->flush());
            // Trim free clusters at the end of the file.
            uint64_t clusters = div_round_up(m_file->size_bytes(), m_cluster_size);
            uint64_t last_used = 0;
            for (uint64_t c = clusters; c-- > 0;) {
                if (CO_TRY(co_await get_refcount(c)) != 0) {
                    last_used = c;
                    break;
                }
            }
            uint64_t keep = (last_used + 1) * m_cluster_size;
            if (keep < m_file->size_bytes())
                (void)co_await m_file->truncate(keep, PreallocMode::Off, true);
            if (m_free_cluster_hint > last_used + 1)
                m_free_cluster_hint = last_used + 1;
        }
        CO_TRY(co_await resize_data_file(new_size, PreallocMode::Off));
        co_return ok();
    }
    {
        auto guard = co_await co_lock(m_meta_lock);
        uint64_t need_l1 = div_round_up(div_round_up(new_size, m_cluster_size), m_l2_entries);
        if (need_l1 > m_l1.size())
            CO_TRY(co_await grow_l1(need_l1));
        m_header.size = new_size;
        auto r = co_await write_header();
        if (!r) {
            m_header.size = old_size;
            co_return std::move(r).error();
        }
        m_size = new_size;
        resize_bitmaps();
        CO_TRY(co_await m_file->flush());
    }
    // A longer backing file must not show through the new area.
    if (m_backing && old_size < m_backing->size_bytes()) {
        uint64_t zero_end = std::min(new_size, m_backing->size_bytes());
        CO_TRY(co_await pwrite_zeroes(old_size, zero_end - old_size, RequestFlags::MayUnmap));
    }
    CO_TRY(co_await resize_data_file(new_size, prealloc));
    CO_TRY(co_await preallocate(old_size, new_size - old_size, prealloc));
    co_return ok();
}

} // namespace kiln::block::qcow2
