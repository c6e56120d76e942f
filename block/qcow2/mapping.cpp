// L1/L2 mapping: finding L2 tables, allocating and copying (COW) them,
// writing L1 entries and growing the L1 table.
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Result<void> Qcow2Node::check_l2_offset(uint64_t l2_offset, uint64_t l1_idx) const
{
    char buf[160];
    if (offset_in_cluster(l2_offset)) {
        std::snprintf(buf, sizeof(buf), "Corrupt image: L2 table offset %#" PRIx64 " unaligned (L1 index: %#" PRIx64 ")",
                      l2_offset, l1_idx);
        return Error::corrupt(buf);
    }
    if (l2_offset < m_cluster_size) {
        std::snprintf(buf, sizeof(buf),
                      "Corrupt image: L2 table offset %#" PRIx64 " overlaps the image header (L1 index: %#" PRIx64 ")",
                      l2_offset, l1_idx);
        return Error::corrupt(buf);
    }
    return ok();
}

Task<Result<TablePtr>> Qcow2Node::l2_table_for_read(uint64_t l1_idx)
{
    if (l1_idx >= m_l1.size())
        co_return TablePtr{};
    uint64_t off = m_l1[l1_idx] & k_l1e_offset_mask;
    if (!off)
        co_return TablePtr{};
    CO_TRY(check_l2_offset(off, l1_idx));
    TablePtr table = CO_TRY(co_await m_l2_cache->get(off));
    co_return table;
}

Task<Result<void>> Qcow2Node::write_l1_entry(uint64_t idx)
{
    uint64_t align = std::min<uint64_t>(std::max<uint64_t>(512, m_file->request_alignment()), m_cluster_size);
    uint64_t per = align / 8;
    uint64_t first = idx / per * per;
    std::vector<uint8_t> buf(align, 0);
    for (uint64_t i = 0; i < per && first + i < m_l1.size(); ++i)
        store_be64(&buf[i * 8], m_l1[first + i]);
    // The entry may point at a table allocated just now.
    CO_TRY(co_await order_after_refcounts());
    CO_TRY(co_await m_file->pwritev(m_l1_offset + first * 8, QIov(buf.data(), buf.size()), RequestFlags::None));
    note_write();
    co_return ok();
}

Task<Result<TablePtr>> Qcow2Node::l2_table_for_write(uint64_t l1_idx)
{
    if (l1_idx >= m_l1.size())
        CO_TRY(co_await grow_l1(l1_idx + 1));
    uint64_t entry = m_l1[l1_idx];
    uint64_t off = entry & k_l1e_offset_mask;
    if (off) {
        CO_TRY(check_l2_offset(off, l1_idx));
        if (entry & k_oflag_copied) {
            TablePtr table = CO_TRY(co_await m_l2_cache->get(off));
            co_return table;
        }
    }
    TablePtr old;
    if (off)
        old = CO_TRY(co_await m_l2_cache->get(off));
    uint64_t new_off = CO_TRY(co_await alloc_clusters(1));
    TablePtr table = m_l2_cache->create(new_off);
    if (old)
        table->data = old->data; // copy of a table shared with a snapshot
    auto r = co_await m_l2_cache->write(*table, 0, m_cluster_size);
    if (!r) {
        m_l2_cache->drop(new_off);
        co_return std::move(r).error(); // the new cluster leaks
    }
    note_write();
    // write_l1_entry flushes the table and its refcount before the entry.
    m_l1[l1_idx] = new_off | k_oflag_copied;
    auto w = co_await write_l1_entry(l1_idx);
    if (!w) {
        m_l1[l1_idx] = entry;
        m_l2_cache->drop(new_off);
        co_return std::move(w).error();
    }
    if (off) {
        // The snapshot keeps the old table; drop our reference only once
        // the L1 entry pointing at the copy is on disk.
        CO_TRY(co_await flush_covering(m_write_seq));
        CO_TRY(co_await change_refcount(off >> m_cluster_bits, -1));
    }
    co_return table;
}

Task<Result<void>> Qcow2Node::grow_l1(uint64_t min_entries)
{
    if (min_entries <= m_l1.size())
        co_return ok();
    if (min_entries * 8 > k_max_l1_bytes)
        co_return Error{ErrorKind::NoSpace, "qcow2: L1 table would exceed its maximum size", EFBIG};
    uint64_t bytes = min_entries * 8;
    uint64_t clusters = div_round_up(bytes, m_cluster_size);
    uint64_t new_off = CO_TRY(co_await alloc_clusters(clusters));
    std::vector<uint8_t> raw(clusters * m_cluster_size, 0);
    for (size_t i = 0; i < m_l1.size(); ++i)
        store_be64(&raw[i * 8], m_l1[i]);
    CO_TRY(co_await m_file->pwritev(new_off, QIov(raw.data(), raw.size()), RequestFlags::None));
    note_write();
    CO_TRY(co_await flush_covering(m_write_seq));
    uint64_t old_off = m_l1_offset;
    uint64_t old_clusters = div_round_up(m_l1.size() * 8, m_cluster_size);
    uint32_t old_size = m_header.l1_size;
    m_header.l1_size = uint32_t(min_entries);
    m_header.l1_table_offset = new_off;
    auto r = co_await write_header();
    if (!r) {
        m_header.l1_size = old_size;
        m_header.l1_table_offset = old_off;
        co_return std::move(r).error();
    }
    m_l1.resize(min_entries, 0);
    m_l1_offset = new_off;
    CO_TRY(co_await flush_covering(m_write_seq));
    if (old_off && old_clusters)
        CO_TRY(co_await set_refcounts(old_off >> m_cluster_bits, old_clusters, 0));
    co_return ok();
}

Task<Result<void>> Qcow2Node::check_data_write(uint64_t host, uint64_t bytes)
{
    auto overlaps = [&](uint64_t start, uint64_t len) { return len && host < start + len && start < host + bytes; };
    const char* what = nullptr;
    if (overlaps(0, m_cluster_size))
        what = "qcow2_header";
    else if (overlaps(m_l1_offset, m_l1.size() * 8))
        what = "active L1 table";
    else if (overlaps(m_header.refcount_table_offset, uint64_t(m_header.refcount_table_clusters) * m_cluster_size))
        what = "refcount table";
    else if (m_header.nb_snapshots && overlaps(m_header.snapshots_offset, m_cluster_size))
        what = "snapshot table";
    if (!what)
        co_return ok();
    std::string why = std::string("Preventing invalid write on metadata (overlaps with ") + what + ")";
    {
        auto guard = co_await co_lock(m_meta_lock);
        (void)co_await mark_corrupt(why);
    }
    co_return Error::corrupt("qcow2: " + why);
}

Task<Result<void>> Qcow2Node::mark_corrupt(const std::string& why)
{
    if (m_header.incompatible_features & k_incompat_corrupt)
        co_return ok();
    std::fprintf(stderr, "qcow2: Marking image as corrupt: %s; further corruption events will be suppressed\n",
                 why.c_str());
    if (!m_v3)
        co_return ok();
    m_header.incompatible_features |= k_incompat_corrupt;
    co_return co_await write_header();
}

} // namespace kiln::block::qcow2
