// Write path: in-place writes to clusters this image owns alone (COPIED),
// allocating writes with copy-on-write of partial clusters (from the
// backing file, zeroes, a shared cluster or a compressed one), write_zeroes
// and discard.
#include <cstring>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

static Error read_only_error() { return {ErrorKind::PermissionDenied, "Block node is read-only", EPERM}; }

Task<void> Qcow2Node::lock_clusters(uint64_t first, uint64_t end, CoEvent& mine)
{
    for (;;) {
        CoEvent* busy = nullptr;
        for (auto& f : m_inflight)
            if (f.first < end && first < f.end) {
                busy = f.done;
                break;
            }
        if (!busy)
            break;
        co_await busy->wait();
    }
    m_inflight.push_back({first, end, &mine});
}

void Qcow2Node::unlock_clusters(CoEvent& mine)
{
    m_inflight.remove_if([&](const Inflight& f) { return f.done == &mine; });
    mine.set();
}

Task<Result<void>> Qcow2Node::pwritev(uint64_t offset, QIov qiov, RequestFlags flags)
{
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    note_guest_write(offset, qiov.size());
    if (encrypted() && ((offset | qiov.size()) % 512))
        co_return co_await pwritev_unaligned_encrypted(offset, std::move(qiov), flags);
    uint64_t len = qiov.size();
    uint64_t pos = 0;
    while (pos < len) {
        uint64_t guest = offset + pos;
        TablePtr table = CO_TRY(co_await l2_table_for_read(l1_index(guest)));
        uint64_t idx = l2_index(guest);
        uint64_t entry = table ? l2_get(*table, idx) : 0;
        uint64_t run = std::min(len - pos, m_cluster_size - offset_in_cluster(guest));
        bool in_place = table && (m_l1[l1_index(guest)] & k_oflag_copied) && writable_in_place(entry, zero_flag());
        for (uint64_t i = idx + 1; pos + run < len && i < m_l2_entries; ++i) {
            uint64_t next = table ? l2_get(*table, i) : 0;
            bool next_in_place = table && writable_in_place(next, zero_flag());
            if (next_in_place != in_place)
                break;
            if (in_place
                && (next & k_l2e_offset_mask) != (entry & k_l2e_offset_mask) + (i - idx) * m_cluster_size)
                break;
            run += std::min(len - pos - run, m_cluster_size);
        }
        if (in_place) {
            uint64_t host = (entry & k_l2e_offset_mask) + offset_in_cluster(guest);
            CO_TRY(co_await check_data_write(host & ~(m_cluster_size - 1), run + offset_in_cluster(guest)));
            CO_TRY(co_await write_data(host, guest, qiov.slice(pos, run)));
            note_write();
            pos += run;
            continue;
        }
        uint64_t done = CO_TRY(co_await write_allocating(guest, qiov.slice(pos, run)));
        pos += done; // 0: the cluster became writable in place meanwhile; retry
    }
    // FUA: the mapping must be durable too, not only the data.
    if (has_flag(flags, RequestFlags::Fua))
        CO_TRY(co_await flush());
    co_return ok();
}

Task<Result<uint64_t>> Qcow2Node::write_allocating(uint64_t guest, QIov qiov)
{
    uint64_t len = qiov.size();
    uint64_t first = guest >> m_cluster_bits;
    uint64_t last = (guest + len - 1) >> m_cluster_bits;
    CoEvent mine(context().loop());
    co_await lock_clusters(first, last + 1, mine);
    struct Unlock {
        Qcow2Node* self;
        CoEvent* ev;
        ~Unlock() { self->unlock_clusters(*ev); }
    } unlock{this, &mine};

    // Look again now that the range is ours.
    uint64_t l1i = l1_index(guest);
    TablePtr table = CO_TRY(co_await l2_table_for_read(l1i));
    bool table_owned = table && (m_l1[l1i] & k_oflag_copied);
    uint64_t idx0 = l2_index(guest);
    std::vector<uint64_t> old;
    for (uint64_t c = first; c <= last; ++c) {
        uint64_t e = table ? l2_get(*table, idx0 + (c - first)) : 0;
        if (table_owned && writable_in_place(e, zero_flag()))
            break;
        old.push_back(e);
    }
    if (old.empty())
        co_return uint64_t(0);
    uint64_t n = old.size();
    uint64_t host = 0;
    {
        auto guard = co_await co_lock(m_meta_lock);
        uint64_t got = 0;
        host = CO_TRY(co_await alloc_some_clusters(n, &got));
        n = got; // the rest is written by the caller's next round
    }
    uint64_t head = offset_in_cluster(guest);
    uint64_t data_bytes = std::min(len, n * m_cluster_size - head);
    uint64_t tail = n * m_cluster_size - head - data_bytes;

    std::vector<uint8_t> head_buf(head), tail_buf(tail);
    auto fill = co_await read_cluster_content(first << m_cluster_bits, old[0], 0, head, head_buf.data());
    if (fill)
        fill = co_await read_cluster_content((first + n - 1) << m_cluster_bits, old[n - 1], m_cluster_size - tail,
                                             tail, tail_buf.data());
    if (fill) {
        QIov out;
        if (head)
            out.add(head_buf.data(), head);
        QIov body = qiov.slice(0, data_bytes);
        for (const auto& v : body.iovecs())
            out.add(v.iov_base, v.iov_len);
        if (tail)
            out.add(tail_buf.data(), tail);
        fill = co_await write_data(host, first << m_cluster_bits, out);
    }
    if (!fill) {
        // Nothing points at the new clusters: give them back (or leak them
        // if even that fails).
        auto guard = co_await co_lock(m_meta_lock);
        (void)co_await set_refcounts(host >> m_cluster_bits, n, 0);
        co_return std::move(fill).error();
    }
    note_write();

    // The data is written: the entries may point at it (they reach the
    // disk at the next commit, after the clusters' refcounts).
    auto guard = co_await co_lock(m_meta_lock);
    table = CO_TRY(co_await l2_table_for_write(l1i));
    std::vector<uint64_t> before(n);
    for (uint64_t i = 0; i < n; ++i) {
        before[i] = l2_get(*table, idx0 + i);
        l2_set(*table, idx0 + i, (host + i * m_cluster_size) | k_oflag_copied);
    }
    m_l2_cache->mark_dirty(*table, idx0 * 8, (idx0 + n) * 8, data_order_for(host, old[0], head, old[n - 1], tail));
    bool release = false;
    for (uint64_t e : before) {
        ClusterType t = type_of(e);
        release |= t == ClusterType::Normal || t == ClusterType::ZeroAlloc || t == ClusterType::Compressed;
    }
    if (release) {
        CO_TRY(co_await commit_metadata());
        for (uint64_t e : before)
            CO_TRY(co_await release_l2_entry(e));
    }
    CO_TRY(co_await commit_if_full());
    co_return data_bytes;
}

Task<Result<void>> Qcow2Node::zero_or_discard_clusters(uint64_t offset, uint64_t bytes, bool discard, bool may_unmap)
{
    while (bytes > 0) {
        uint64_t l1i = l1_index(offset);
        uint64_t idx0 = l2_index(offset);
        uint64_t n = std::min(bytes >> m_cluster_bits, m_l2_entries - idx0);
        if (bytes < m_cluster_size)
            n = 1; // final partial cluster at the end of the image
        uint64_t first = offset >> m_cluster_bits;
        CoEvent mine(context().loop());
        co_await lock_clusters(first, first + n, mine);
        struct Unlock {
            Qcow2Node* self;
            CoEvent* ev;
            ~Unlock() { self->unlock_clusters(*ev); }
        } unlock{this, &mine};
        auto guard = co_await co_lock(m_meta_lock);

        bool has_table = l1i < m_l1.size() && (m_l1[l1i] & k_l1e_offset_mask);
        bool need_table = has_table || (m_v3 && !discard && m_backing);
        if (need_table) {
            TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
            std::vector<uint64_t> released;
            for (uint64_t i = 0; i < n; ++i) {
                uint64_t e = l2_get(*table, idx0 + i);
                ClusterType t = type_of(e);
                bool allocated = t == ClusterType::Normal || t == ClusterType::ZeroAlloc || t == ClusterType::Compressed;
                uint64_t ne;
                if (!m_v3) {
                    ne = 0;
                } else if (discard) {
                    ne = (allocated || m_backing) ? k_oflag_zero : 0;
                } else if (!may_unmap && (e & k_oflag_copied)
                           && (t == ClusterType::Normal || t == ClusterType::ZeroAlloc)) {
                    ne = (e & k_l2e_offset_mask) | k_oflag_zero | k_oflag_copied; // keep the allocation
                } else {
                    ne = k_oflag_zero;
                }
                if ((ne & k_l2e_offset_mask) == 0 && allocated)
                    released.push_back(e);
                l2_set(*table, idx0 + i, ne);
            }
            m_l2_cache->mark_dirty(*table, idx0 * 8, (idx0 + n) * 8);
            if (!released.empty()) {
                CO_TRY(co_await commit_metadata());
                for (uint64_t e : released) {
                    CO_TRY(co_await release_l2_entry(e));
                    if (discard && type_of(e) == ClusterType::Normal) {
                        uint64_t h = e & k_l2e_offset_mask;
                        uint64_t rc = CO_TRY(co_await get_refcount(h >> m_cluster_bits));
                        if (rc == 0)
                            (void)co_await m_file->pdiscard(h, m_cluster_size);
                    }
                }
            }
            CO_TRY(co_await commit_if_full());
        }
        uint64_t done = std::min(bytes, n * m_cluster_size);
        offset += done;
        bytes -= done;
    }
    co_return ok();
}

// Splits [offset, offset+bytes) into a partial head, whole clusters (the
// image's last cluster counts as whole when the range reaches the end) and
// a partial tail.
static void split_clusters(uint64_t offset, uint64_t bytes, uint64_t cs, uint64_t image_size, uint64_t& head,
                           uint64_t& middle, uint64_t& tail)
{
    uint64_t end = offset + bytes;
    uint64_t a = (offset + cs - 1) / cs * cs;
    uint64_t b = end / cs * cs;
    if (end == image_size)
        b = end;
    if (a >= b) {
        head = bytes;
        middle = tail = 0;
        if (offset % cs == 0 && end == image_size) {
            head = 0;
            middle = bytes;
        }
        return;
    }
    head = a - offset;
    middle = b - a;
    tail = end - b;
}

Task<Result<void>> Qcow2Node::pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    note_guest_write(offset, bytes);
    bool may_unmap = has_flag(flags, RequestFlags::MayUnmap);
    bool efficient = m_v3 || (!m_backing && may_unmap);
    if (!efficient)
        co_return co_await BlockNode::pwrite_zeroes(offset, bytes, flags);
    uint64_t head, middle, tail;
    split_clusters(offset, bytes, m_cluster_size, m_size, head, middle, tail);
    if ((head || tail) && has_flag(flags, RequestFlags::NoFallback))
        co_return Error::not_supported("qcow2: cannot write zeroes efficiently to a partial cluster");
    if (head) {
        std::vector<uint8_t> z(head, 0);
        CO_TRY(co_await pwritev(offset, QIov(z.data(), head), RequestFlags::None));
    }
    if (middle)
        CO_TRY(co_await zero_or_discard_clusters(offset + head, middle, false, may_unmap));
    if (tail) {
        std::vector<uint8_t> z(tail, 0);
        CO_TRY(co_await pwritev(offset + head + middle, QIov(z.data(), tail), RequestFlags::None));
    }
    // FUA: the mapping must be durable too, not only the data.
    if (has_flag(flags, RequestFlags::Fua))
        CO_TRY(co_await flush());
    co_return ok();
}

Task<Result<void>> Qcow2Node::pdiscard(uint64_t offset, uint64_t bytes)
{
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    note_guest_write(offset, bytes);
    uint64_t head, middle, tail;
    split_clusters(offset, bytes, m_cluster_size, m_size, head, middle, tail);
    // Partial clusters are ignored: discard is advisory.
    if (middle)
        CO_TRY(co_await zero_or_discard_clusters(offset + head, middle, true, true));
    co_return ok();
}

} // namespace kiln::block::qcow2
