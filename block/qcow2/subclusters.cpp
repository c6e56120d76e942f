// Extended L2 entries (incompatible bit 4): each L2 entry has a second word,
// a bitmap of 32 "allocated" (bits 0-31) and 32 "reads as zero" (bits
// 32-63) subclusters. Writes allocate and copy-on-write at subcluster
// granularity: a 4 KiB write into an empty 64 KiB cluster writes 4 KiB,
// not 64; zeroing whole subclusters only flips bits. The rules follow
// QEMU's (qcow2-cluster.c): a cluster this image owns (COPIED) is written
// in place and its bitmap widened; a cluster it does not own (unallocated,
// shared with a snapshot, compressed) gets a new host cluster holding the
// written subclusters plus, for a shared or compressed one, everything the
// old cluster had allocated.
#include <bit>
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

constexpr uint64_t k_all_alloc = 0xffffffffull;
constexpr uint64_t k_all_zero = 0xffffffffull << 32;

// Allocation bits of subclusters [first, end).
uint64_t alloc_range(uint64_t first, uint64_t end)
{
    return ((end >= 32 ? 0x100000000ull : (1ull << end)) - (1ull << first));
}

uint64_t zero_range(uint64_t first, uint64_t end) { return alloc_range(first, end) << 32; }

} // namespace

Result<void> Qcow2Node::check_subcluster_bitmap(uint64_t entry, uint64_t bitmap, uint64_t l1_idx, uint64_t idx) const
{
    bool bad = false;
    if (entry & k_oflag_compressed)
        return ok(); // the bitmap of a compressed cluster is ignored (check reports it)
    if (type_of(entry) == ClusterType::Normal)
        bad = (bitmap >> 32) & bitmap & k_all_alloc;
    else
        bad = bitmap & k_all_alloc;
    if (!bad)
        return ok();
    char buf[160];
    uint64_t l2_off = l1_idx < m_l1.size() ? (m_l1[l1_idx] & k_l1e_offset_mask) : 0;
    std::snprintf(buf, sizeof buf, "Invalid cluster entry found (L2 offset: %#" PRIx64 ", L2 index: %#" PRIx64 ")",
                  l2_off, idx);
    return Error::corrupt(buf);
}

Task<Result<void>> Qcow2Node::pwritev_subclusters(uint64_t offset, QIov qiov)
{
    uint64_t len = qiov.size();
    uint64_t pos = 0;
    while (pos < len) {
        uint64_t guest = offset + pos;
        uint64_t run = std::min(len - pos, m_cluster_size - offset_in_cluster(guest));
        CO_TRY(co_await write_subclusters(guest, qiov.slice(pos, run)));
        pos += run;
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::write_subclusters(uint64_t guest, QIov qiov)
{
    const uint64_t sc = subcluster_size();
    const uint64_t in = offset_in_cluster(guest);
    const uint64_t len = qiov.size();
    const uint64_t sc0 = in / sc, sc1 = (in + len - 1) / sc;
    const uint64_t touched = alloc_range(sc0, sc1 + 1);
    const uint64_t l1i = l1_index(guest), idx = l2_index(guest);
    const uint64_t cluster_guest = guest - in;

    auto in_place_write = [&](uint64_t entry) -> Task<Result<void>> {
        uint64_t host = (entry & k_l2e_offset_mask) + in;
        CO_TRY(check_data_file_entry(guest, entry, l1i));
        if (!m_data_file)
            CO_TRY(co_await check_data_write(host - in, in + len));
        CO_TRY(co_await write_data(host, guest, qiov));
        note_write();
        co_return ok();
    };

    // Fast path: the touched subclusters are allocated in a cluster this
    // image owns, so no metadata changes.
    {
        TablePtr table = CO_TRY(co_await l2_table_for_read(l1i));
        if (table && (m_l1[l1i] & k_oflag_copied)) {
            uint64_t e = l2_get(*table, idx), bm = l2_bitmap(*table, idx);
            if (writable_in_place(e, false) && (bm & touched) == touched) {
                CO_TRY(check_subcluster_bitmap(e, bm, l1i, idx));
                co_return co_await in_place_write(e);
            }
        }
    }

    uint64_t first = guest >> m_cluster_bits;
    ClusterRange owned = co_await own_clusters(first, first + 1);

    TablePtr table = CO_TRY(co_await l2_table_for_read(l1i));
    uint64_t e = table ? l2_get(*table, idx) : 0;
    uint64_t bm = table ? l2_bitmap(*table, idx) : 0;
    CO_TRY(check_subcluster_bitmap(e, bm, l1i, idx));
    CO_TRY(check_data_file_entry(guest, e, l1i));
    bool in_place = table && (m_l1[l1i] & k_oflag_copied) && writable_in_place(e, false);
    if (in_place && (bm & touched) == touched)
        co_return co_await in_place_write(e);

    // [from, to): the bytes of the cluster this write puts on disk.
    uint64_t from = sc0 * sc, to = (sc1 + 1) * sc;
    uint64_t new_bm = 0;
    ClusterType type = type_of(e);
    if (in_place) {
        // Edge subclusters already allocated keep their other bytes.
        if (bm & (1ull << sc0))
            from = in;
        if (bm & (1ull << sc1))
            to = in + len;
        new_bm = (bm | touched) & ~zero_range(sc0, sc1 + 1);
    } else if (type == ClusterType::Compressed) {
        from = 0;
        to = m_cluster_size;
        new_bm = k_all_alloc;
    } else if (type == ClusterType::Normal && (bm & k_all_alloc)) {
        // Shared with a snapshot: the new cluster takes over everything the
        // old one had allocated, and the write.
        uint64_t alloc = bm & k_all_alloc;
        uint64_t lo = std::min<uint64_t>(sc0, std::countr_zero(alloc));
        uint64_t hi = std::max<uint64_t>(sc1, 63 - std::countl_zero(alloc));
        from = lo * sc;
        to = (hi + 1) * sc;
        new_bm = (bm | alloc_range(lo, hi + 1)) & ~zero_range(lo, hi + 1);
    } else {
        new_bm = (bm | touched) & ~zero_range(sc0, sc1 + 1);
    }
    to = std::min(to, m_cluster_size);

    uint64_t host = 0;
    bool fresh = !in_place;
    if (in_place) {
        host = e & k_l2e_offset_mask;
    } else {
        uint64_t got = 0;
        host = CO_TRY(co_await alloc_data_clusters(cluster_guest, 1, &got));
    }

    // Old content around the write: what the old entry reads as there.
    uint64_t head = in - from, tail = to - (in + len);
    std::vector<uint8_t> head_buf(head), tail_buf(tail);
    Result<void> fill = ok();
    if (type == ClusterType::Compressed && (head || tail)) {
        std::vector<uint8_t> buf(m_cluster_size);
        fill = co_await read_compressed(e, buf.data());
        if (fill) {
            std::memcpy(head_buf.data(), buf.data() + from, head);
            std::memcpy(tail_buf.data(), buf.data() + in + len, tail);
        }
    } else {
        if (head)
            fill = co_await read_subclusters(cluster_guest + from, e, bm, QIov(head_buf.data(), head));
        if (fill && tail)
            fill = co_await read_subclusters(guest + len, e, bm, QIov(tail_buf.data(), tail));
    }
    if (fill && in_place && !m_data_file)
        fill = co_await check_data_write(host, m_cluster_size);
    if (fill) {
        QIov out;
        if (head)
            out.add(head_buf.data(), head);
        for (const auto& v : qiov.iovecs())
            out.add(v.iov_base, v.iov_len);
        if (tail)
            out.add(tail_buf.data(), tail);
        fill = co_await write_data(host + from, cluster_guest + from, out);
    }
    if (!fill) {
        if (fresh)
            co_await free_new_data_clusters(host, 1);
        co_return std::move(fill).error();
    }
    note_write();

    // The data is written: the entry may say so (on disk at the next
    // commit, after the new cluster's refcount).
    auto guard = co_await co_lock(m_meta_lock);
    table = CO_TRY(co_await l2_table_for_write(l1i));
    uint64_t before = l2_get(*table, idx);
    l2_set(*table, idx, host | k_oflag_copied);
    l2_set_bitmap(*table, idx, new_bm);
    mark_l2_dirty(*table, idx, 1);
    ClusterType bt = type_of(before);
    if (fresh && (bt == ClusterType::Normal || bt == ClusterType::Compressed)
        && (before & k_l2e_offset_mask) != host) {
        CO_TRY(co_await commit_metadata());
        CO_TRY(co_await release_l2_entry(before));
    }
    CO_TRY(co_await commit_if_full());
    co_return ok();
}

// Zeroing whole clusters: every subcluster reads as zero; the host cluster
// is kept unless unmapping is allowed (or it is compressed). Discarding a
// whole cluster drops it (reads as zero, not from the backing file).
void Qcow2Node::zero_ext_entry(uint64_t e, uint64_t bm, bool discard, bool may_unmap, uint64_t* ne,
                               uint64_t* nbm) const
{
    ClusterType t = type_of(e);
    bool allocated = t == ClusterType::Normal || t == ClusterType::Compressed;
    *ne = e;
    *nbm = bm;
    if (discard) {
        if (allocated || m_backing) {
            *ne = 0;
            *nbm = k_all_zero;
        }
        return;
    }
    if (t == ClusterType::Compressed || (may_unmap && allocated))
        *ne = 0;
    *nbm = k_all_zero;
}

// Zero bits for the subcluster-aligned range [offset, offset+bytes) inside
// one cluster; false when the cluster is compressed (its bitmap cannot
// describe parts: the caller writes zeroes instead).
Task<Result<bool>> Qcow2Node::zero_subcluster_range(uint64_t offset, uint64_t bytes)
{
    uint64_t first = offset >> m_cluster_bits;
    ClusterRange owned = co_await own_clusters(first, first + 1);
    auto guard = co_await co_lock(m_meta_lock);
    uint64_t l1i = l1_index(offset), idx = l2_index(offset);
    bool has_table = l1i < m_l1.size() && (m_l1[l1i] & k_l1e_offset_mask);
    if (!has_table && !m_backing)
        co_return true; // reads as zero already
    TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
    uint64_t e = l2_get(*table, idx), bm = l2_bitmap(*table, idx);
    if (type_of(e) == ClusterType::Compressed)
        co_return false;
    uint64_t sc = subcluster_size();
    uint64_t in = offset_in_cluster(offset);
    uint64_t s0 = in / sc, s1 = div_round_up(in + bytes, sc);
    uint64_t nbm = (bm & ~alloc_range(s0, s1)) | zero_range(s0, s1);
    if (nbm != bm) {
        l2_set_bitmap(*table, idx, nbm);
        mark_l2_dirty(*table, idx, 1);
        CO_TRY(co_await commit_if_full());
    }
    co_return true;
}

// write_zeroes at subcluster granularity: partial subclusters are written
// as zero data, whole ones become zero subclusters, whole clusters zero
// entries (as QEMU's qcow2_subcluster_zeroize).
Task<Result<void>> Qcow2Node::write_zeroes_subclusters(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    uint64_t head, middle, tail;
    split_clusters(offset, bytes, subcluster_size(), m_size, head, middle, tail);
    uint64_t a = offset + head, b = a + middle;
    if ((head || tail) && has_flag(flags, RequestFlags::NoFallback))
        co_return Error::not_supported("qcow2: cannot write zeroes efficiently to a partial subcluster");
    if (head) {
        std::vector<uint8_t> z(head, 0);
        CO_TRY(co_await pwritev_subclusters(offset, QIov(z.data(), head)));
    }
    if (a < b) {
        CO_TRY(co_await zero_raw_data_file(a, b - a));
        bool may_unmap = has_flag(flags, RequestFlags::MayUnmap);
        uint64_t pos = a;
        while (pos < b) {
            uint64_t cluster_end = std::min(align_up(pos + 1, m_cluster_size), b);
            bool whole = offset_in_cluster(pos) == 0 && (cluster_end - pos == m_cluster_size || cluster_end == m_size);
            if (whole) {
                // As many whole clusters as there are.
                uint64_t run_end = b == m_size ? b : b / m_cluster_size * m_cluster_size;
                CO_TRY(co_await zero_or_discard_clusters(pos, run_end - pos, false, may_unmap));
                pos = run_end;
                continue;
            }
            if (!CO_TRY(co_await zero_subcluster_range(pos, cluster_end - pos))) {
                std::vector<uint8_t> z(cluster_end - pos, 0);
                CO_TRY(co_await pwritev_subclusters(pos, QIov(z.data(), z.size())));
            }
            pos = cluster_end;
        }
    }
    if (tail) {
        std::vector<uint8_t> z(tail, 0);
        CO_TRY(co_await pwritev_subclusters(b, QIov(z.data(), tail)));
    }
    co_return ok();
}

} // namespace kiln::block::qcow2
