// Refcounts and cluster allocation.
//
// Ordering rules (crash safety): refcount changes stay in the refcount
// cache until a commit or order_after_refcounts() writes them (see
// commit.cpp); a new refcount block is written and flushed before the
// refcount table points at it; a new refcount table is written and flushed
// before the header points at it, and the old one is freed only after that.
#include <cinttypes>
#include <algorithm>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

uint64_t Qcow2Node::refblock_get(const CachedTable& t, uint64_t idx) const
{
    const uint8_t* d = t.data.data();
    switch (m_header.refcount_order) {
    case 0: return (d[idx / 8] >> (idx % 8)) & 1;
    case 1: return (d[idx / 4] >> (2 * (idx % 4))) & 3;
    case 2: return (d[idx / 2] >> (4 * (idx % 2))) & 15;
    case 3: return d[idx];
    case 4: return load_be16(d + idx * 2);
    case 5: return load_be32(d + idx * 4);
    default: return load_be64(d + idx * 8);
    }
}

void Qcow2Node::refblock_set(CachedTable& t, uint64_t idx, uint64_t v)
{
    uint8_t* d = t.data.data();
    switch (m_header.refcount_order) {
    case 0: d[idx / 8] = uint8_t((d[idx / 8] & ~(1u << (idx % 8))) | ((v & 1) << (idx % 8))); break;
    case 1: {
        unsigned s = 2 * (idx % 4);
        d[idx / 4] = uint8_t((d[idx / 4] & ~(3u << s)) | ((v & 3) << s));
        break;
    }
    case 2: {
        unsigned s = 4 * (idx % 2);
        d[idx / 2] = uint8_t((d[idx / 2] & ~(15u << s)) | ((v & 15) << s));
        break;
    }
    case 3: d[idx] = uint8_t(v); break;
    case 4: store_be16(d + idx * 2, uint16_t(v)); break;
    case 5: store_be32(d + idx * 4, uint32_t(v)); break;
    default: store_be64(d + idx * 8, v); break;
    }
}

static Result<uint64_t> refblock_offset(uint64_t entry, uint64_t cluster_size, uint64_t index)
{
    uint64_t off = entry & k_reftable_offset_mask;
    if (off & (cluster_size - 1)) {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "Refblock offset %#" PRIx64 " unaligned (reftable index: %#" PRIx64 ")", off,
                      index);
        return Error::corrupt(buf);
    }
    if (off != 0 && off < cluster_size)
        return Error::corrupt("Refblock offset overlaps the qcow2 header");
    return off;
}

Task<Result<uint64_t>> Qcow2Node::get_refcount(uint64_t cluster)
{
    uint64_t e = refblock_entries();
    uint64_t t = cluster / e;
    if (t >= m_reftable.size())
        co_return uint64_t(0);
    uint64_t off = CO_TRY(refblock_offset(m_reftable[t], m_cluster_size, t));
    if (!off)
        co_return uint64_t(0);
    TablePtr block = CO_TRY(co_await m_refcount_cache->get(off));
    co_return refblock_get(*block, cluster % e);
}

Task<Result<void>> Qcow2Node::flush_covering(uint64_t seq)
{
    if (m_flushed_seq >= seq)
        co_return ok();
    uint64_t target = m_write_seq;
    CO_TRY(co_await m_file->flush());
    if (target > m_flushed_seq)
        m_flushed_seq = target;
    co_return ok();
}

Task<Result<void>> Qcow2Node::set_refcounts(uint64_t cluster, uint64_t count, uint64_t value)
{
    CO_TRY(co_await mark_dirty_if_lazy());
    uint64_t e = refblock_entries();
    uint64_t bits = 1ull << m_header.refcount_order;
    while (count > 0) {
        uint64_t t = cluster / e;
        uint64_t idx = cluster % e;
        uint64_t n = std::min(count, e - idx);
        uint64_t off = 0;
        if (t < m_reftable.size())
            off = CO_TRY(refblock_offset(m_reftable[t], m_cluster_size, t));
        if (!off) {
            if (value != 0)
                co_return Error::internal("qcow2: refcount block missing for an allocated cluster");
        } else {
            TablePtr block = CO_TRY(co_await m_refcount_cache->get(off));
            for (uint64_t i = 0; i < n; ++i)
                refblock_set(*block, idx + i, value);
            m_refcount_cache->mark_dirty(*block, idx * bits / 8, ((idx + n) * bits + 7) / 8);
        }
        if (value == 0 && cluster < m_free_cluster_hint)
            m_free_cluster_hint = cluster;
        // A freed cluster keeps its old bytes: no longer fresh.
        if (value == 0 && m_fresh_from_cluster != UINT64_MAX)
            m_fresh_from_cluster = std::max(m_fresh_from_cluster, cluster + n);
        // A freed cluster can no longer take packed compressed data.
        if (value == 0 && m_free_byte_offset && (m_free_byte_offset >> m_cluster_bits) >= cluster
            && (m_free_byte_offset >> m_cluster_bits) < cluster + n)
            m_free_byte_offset = 0;
        cluster += n;
        count -= n;
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::change_refcount(uint64_t cluster, int64_t delta)
{
    uint64_t rc = CO_TRY(co_await get_refcount(cluster));
    if (delta < 0 && rc < uint64_t(-delta)) {
        char buf[96];
        std::snprintf(buf, sizeof(buf), "qcow2: refcount underflow on cluster %" PRIu64, cluster);
        co_return Error::corrupt(buf);
    }
    if (delta > 0 && refcount_max() - rc < uint64_t(delta))
        co_return Error{ErrorKind::Corrupt, "qcow2: refcount overflow", ERANGE};
    CO_TRY(co_await set_refcounts(cluster, 1, rc + delta));
    co_return ok();
}

Task<Result<void>> Qcow2Node::write_reftable_entry(uint64_t idx)
{
    uint64_t align = std::min<uint64_t>(std::max<uint64_t>(512, m_file->request_alignment()), m_cluster_size);
    uint64_t per = align / 8;
    uint64_t first = idx / per * per;
    std::vector<uint8_t> buf(align, 0);
    for (uint64_t i = 0; i < per && first + i < m_reftable.size(); ++i)
        store_be64(&buf[i * 8], m_reftable[first + i]);
    CO_TRY(co_await order_after_refcounts());
    CO_TRY(co_await m_file->pwritev(m_header.refcount_table_offset + first * 8, QIov(buf.data(), buf.size()),
                                    RequestFlags::None));
    note_write();
    co_return ok();
}

Task<Result<void>> Qcow2Node::make_refblock(uint64_t t, uint64_t at_cluster)
{
    uint64_t off = at_cluster << m_cluster_bits;
    TablePtr block = m_refcount_cache->create(off);
    // The block lies in the range it describes, so it counts itself.
    refblock_set(*block, at_cluster % refblock_entries(), 1);
    auto r = co_await m_refcount_cache->write(*block, 0, m_cluster_size);
    if (!r) {
        m_refcount_cache->drop(off);
        co_return std::move(r).error();
    }
    note_write();
    CO_TRY(co_await flush_covering(m_write_seq));
    m_reftable[t] = off;
    auto w = co_await write_reftable_entry(t);
    if (!w) {
        // Unknown on disk: keep the block in use in memory so it is never
        // handed out twice; on disk it is at worst a leak.
        co_return std::move(w).error();
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::grow_refcount_table(uint64_t c, uint64_t min_entries)
{
    // Every cluster from `c` on is free: it lies past what the current
    // table can describe. New refcount blocks and the new table go there.
    uint64_t e = refblock_entries();
    uint64_t per_cluster = m_cluster_size / 8;
    uint64_t old_entries = m_reftable.size();
    uint64_t entries = std::max(min_entries, old_entries + old_entries / 2 + 1);
    uint64_t t_first = c / e, k = 1, tc = 0;
    for (int iter = 0; iter < 64; ++iter) {
        tc = div_round_up(entries, per_cluster);
        uint64_t t_last = (c + k + tc - 1) / e;
        uint64_t need_k = t_last - t_first + 1;
        bool stable = need_k == k && t_last < entries;
        k = need_k;
        if (t_last >= entries)
            entries = t_last + 1;
        if (stable)
            break;
    }
    entries = tc * per_cluster;
    if (tc * m_cluster_size > k_max_refcount_table_bytes)
        co_return Error{ErrorKind::NoSpace, "qcow2: reference count table would exceed its maximum size", EFBIG};
    uint64_t new_table_cluster = c + k;

    std::vector<uint64_t> table(entries, 0);
    std::copy(m_reftable.begin(), m_reftable.end(), table.begin());
    for (uint64_t i = 0; i < k; ++i) {
        uint64_t block_cluster = c + i;
        uint64_t t = t_first + i;
        TablePtr block = m_refcount_cache->create(block_cluster << m_cluster_bits);
        for (uint64_t x = c; x < c + k + tc; ++x)
            if (x / e == t)
                refblock_set(*block, x % e, 1);
        auto r = co_await m_refcount_cache->write(*block, 0, m_cluster_size);
        if (!r) {
            for (uint64_t j = 0; j <= i; ++j)
                m_refcount_cache->drop((c + j) << m_cluster_bits);
            co_return std::move(r).error();
        }
        table[t] = block_cluster << m_cluster_bits;
    }
    std::vector<uint8_t> raw(tc * m_cluster_size, 0);
    for (uint64_t i = 0; i < entries; ++i)
        store_be64(&raw[i * 8], table[i]);
    CO_TRY(co_await m_file->pwritev(new_table_cluster << m_cluster_bits, QIov(raw.data(), raw.size()),
                                    RequestFlags::None));
    note_write();
    CO_TRY(co_await flush_covering(m_write_seq));

    uint64_t old_offset = m_header.refcount_table_offset;
    uint32_t old_clusters = m_header.refcount_table_clusters;
    m_header.refcount_table_offset = new_table_cluster << m_cluster_bits;
    m_header.refcount_table_clusters = uint32_t(tc);
    auto hr = co_await write_header();
    if (!hr) {
        m_header.refcount_table_offset = old_offset;
        m_header.refcount_table_clusters = old_clusters;
        co_return std::move(hr).error();
    }
    m_reftable = std::move(table);
    CO_TRY(co_await flush_covering(m_write_seq));
    CO_TRY(co_await set_refcounts(old_offset >> m_cluster_bits, old_clusters, 0));
    co_return ok();
}

// Scans from the free-cluster hint. A refcount block that does not exist
// yet is created at the first cluster of the range it describes, so runs
// never cross it: `exact` callers need count < refblock_entries().
Task<Result<uint64_t>> Qcow2Node::scan_alloc(uint64_t count, bool exact, uint64_t* got)
{
    uint64_t e = refblock_entries();
    uint64_t c = std::max(m_free_cluster_hint, m_alloc_floor);
    uint64_t run_start = 0, run = 0;
    bool hint_set = false;
    while (run < count) {
        if ((c + 1) > (k_max_image_bytes >> m_cluster_bits))
            co_return Error{ErrorKind::NoSpace, "qcow2: image would exceed the maximum image size", EFBIG};
        uint64_t t = c / e;
        bool missing = t >= m_reftable.size() || !(m_reftable[t] & k_reftable_offset_mask);
        if (missing && run > 0 && !exact)
            break; // take the run found so far
        if (t >= m_reftable.size()) {
            CO_TRY(co_await grow_refcount_table(c, t + 1));
            run = 0;
            continue;
        }
        if (missing) {
            CO_TRY(co_await make_refblock(t, c));
            run = 0;
            ++c;
            continue;
        }
        uint64_t rc = CO_TRY(co_await get_refcount(c));
        if (rc == 0) {
            if (!hint_set) {
                m_free_cluster_hint = c;
                hint_set = true;
            }
            if (run == 0)
                run_start = c;
            ++run;
        } else {
            if (run > 0 && !exact)
                break;
            run = 0;
        }
        ++c;
    }
    CO_TRY(co_await set_refcounts(run_start, run, 1));
    if (m_free_cluster_hint == run_start)
        m_free_cluster_hint = run_start + run;
    *got = run;
    co_return run_start << m_cluster_bits;
}

Task<Result<uint64_t>> Qcow2Node::alloc_some_clusters(uint64_t count, uint64_t* got)
{
    co_return co_await scan_alloc(count, false, got);
}

Task<Result<uint64_t>> Qcow2Node::alloc_clusters(uint64_t count)
{
    uint64_t got = 0;
    if (count < refblock_entries() / 2)
        co_return co_await scan_alloc(count, true, &got);
    co_return co_await alloc_at_end(count);
}

// Large contiguous allocations (L1 tables) go past the end of the image,
// preceded by the refcount blocks the new range needs.
Task<Result<uint64_t>> Qcow2Node::alloc_at_end(uint64_t count)
{
    uint64_t e = refblock_entries();
    for (int attempt = 0; attempt < 8; ++attempt) {
        uint64_t c = std::max<uint64_t>(div_round_up(m_file->size_bytes(), m_cluster_size), m_alloc_floor);
        // k new refcount blocks at c, then the payload.
        uint64_t k = 0;
        std::vector<uint64_t> missing;
        for (int iter = 0; iter < 64; ++iter) {
            missing.clear();
            uint64_t t_first = c / e, t_last = (c + k + count - 1) / e;
            for (uint64_t t = t_first; t <= t_last; ++t)
                if (t >= m_reftable.size() || !(m_reftable[t] & k_reftable_offset_mask))
                    missing.push_back(t);
            if (missing.size() == k)
                break;
            k = missing.size();
        }
        if (!missing.empty() && missing.back() >= m_reftable.size()) {
            uint64_t at = std::max(c, uint64_t(m_reftable.size()) * e);
            CO_TRY(co_await grow_refcount_table(at, missing.back() + 1));
            continue; // the file grew: lay out again
        }
        // Everything from c on must be free (nothing past EOF is in use).
        bool busy = false;
        for (uint64_t x = c; x < c + k + count && !busy; ++x) {
            uint64_t t = x / e;
            if (t < m_reftable.size() && (m_reftable[t] & k_reftable_offset_mask))
                busy = CO_TRY(co_await get_refcount(x)) != 0;
        }
        if (busy) {
            m_alloc_floor = std::max(m_alloc_floor, c + k + count);
            continue;
        }
        // Refcounts of the new blocks that land in existing blocks first,
        // then the blocks themselves (counting the new ones among them),
        // flushed before the table links them.
        for (uint64_t j = 0; j < k; ++j) {
            uint64_t x = c + j;
            if (std::find(missing.begin(), missing.end(), x / e) == missing.end())
                CO_TRY(co_await set_refcounts(x, 1, 1));
        }
        for (uint64_t j = 0; j < k; ++j) {
            uint64_t t = missing[j];
            TablePtr block = m_refcount_cache->create((c + j) << m_cluster_bits);
            for (uint64_t x = c; x < c + k; ++x)
                if (x / e == t)
                    refblock_set(*block, x % e, 1);
            CO_TRY(co_await m_refcount_cache->write(*block, 0, m_cluster_size));
            note_write();
        }
        if (k) {
            CO_TRY(co_await flush_covering(m_write_seq));
            for (uint64_t j = 0; j < k; ++j) {
                m_reftable[missing[j]] = (c + j) << m_cluster_bits;
                CO_TRY(co_await write_reftable_entry(missing[j]));
            }
        }
        CO_TRY(co_await set_refcounts(c + k, count, 1));
        co_return (c + k) << m_cluster_bits;
    }
    co_return Error{ErrorKind::NoSpace, "qcow2: cannot allocate a contiguous cluster range", ENOSPC};
}

Task<Result<void>> Qcow2Node::release_l2_entry(uint64_t entry)
{
    ClusterType type = type_of(entry);
    if (type == ClusterType::Normal || type == ClusterType::ZeroAlloc) {
        uint64_t cluster = (entry & k_l2e_offset_mask) >> m_cluster_bits;
        CO_TRY(co_await change_refcount(cluster, -1));
        co_return ok();
    }
    if (type == ClusterType::Compressed) {
        uint64_t coffset = entry & m_compressed_offset_mask;
        uint64_t sectors = ((entry >> m_compressed_shift) & m_compressed_mask) + 1;
        uint64_t start = coffset & ~uint64_t(511);
        uint64_t end = start + sectors * 512;
        for (uint64_t c = start >> m_cluster_bits; c <= (end - 1) >> m_cluster_bits; ++c)
            CO_TRY(co_await change_refcount(c, -1));
    }
    co_return ok();
}

} // namespace kiln::block::qcow2
