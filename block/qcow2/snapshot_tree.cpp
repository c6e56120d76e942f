// Whole-tree walks for internal snapshots: collecting every cluster an L1
// table reaches, adding to or taking from all their refcounts at once, and
// keeping OFLAG_COPIED right in the active tables.
//
// Refcounts follow QEMU's rule: a data cluster counts one reference per L1
// table (active or snapshot) that reaches it, whether through its own L2
// table or a shared one, so a COW of a shared L2 table moves no data
// refcount.
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<std::vector<uint64_t>>> Qcow2Node::tree_clusters(const std::vector<uint64_t>& l1)
{
    std::vector<uint64_t> out;
    uint64_t file_size = m_file->size_bytes();
    for (uint64_t i = 0; i < l1.size(); ++i) {
        uint64_t l2_off = l1[i] & k_l1e_offset_mask;
        if (!l2_off)
            continue;
        CO_TRY(check_l2_offset(l2_off, i));
        if (l2_off >= file_size) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "Corrupt image: L2 table offset %#" PRIx64 " is past the end of the file",
                          l2_off);
            co_return Error::corrupt(buf);
        }
        out.push_back(l2_off >> m_cluster_bits);
        TablePtr table = CO_TRY(co_await m_l2_cache->get(l2_off));
        for (uint64_t j = 0; j < m_l2_entries; ++j) {
            uint64_t e = l2_get(*table, j);
            switch (type_of(e)) {
            case ClusterType::Normal:
            case ClusterType::ZeroAlloc:
                // Clusters of an external data file have no refcounts.
                if (!(m_header.incompatible_features & k_incompat_data_file))
                    out.push_back((e & k_l2e_offset_mask) >> m_cluster_bits);
                break;
            case ClusterType::Compressed: {
                uint64_t coffset = e & m_compressed_offset_mask;
                uint64_t sectors = ((e >> m_compressed_shift) & m_compressed_mask) + 1;
                uint64_t start = coffset & ~uint64_t(511);
                uint64_t end = start + sectors * 512;
                for (uint64_t c = start >> m_cluster_bits; c <= (end - 1) >> m_cluster_bits; ++c)
                    out.push_back(c);
                break;
            }
            default:
                break;
            }
        }
    }
    co_return out;
}

// Every new value, checked before anything is written, so a hostile tree
// fails cleanly instead of leaving half an update.
Task<Result<std::vector<Qcow2Node::RefcountUpdate>>> Qcow2Node::plan_refcount_delta(std::vector<uint64_t> clusters,
                                                                                    int64_t delta)
{
    std::sort(clusters.begin(), clusters.end());
    std::vector<RefcountUpdate> updates;
    for (size_t i = 0; i < clusters.size();) {
        size_t j = i;
        while (j < clusters.size() && clusters[j] == clusters[i])
            ++j;
        uint64_t c = clusters[i];
        uint64_t times = j - i;
        uint64_t rc = CO_TRY(co_await get_refcount(c));
        char buf[128];
        if (rc == 0) {
            std::snprintf(buf, sizeof buf, "qcow2: cluster %" PRIu64 " is in use but its refcount is 0", c);
            co_return Error::corrupt(buf);
        }
        uint64_t value;
        if (delta < 0) {
            if (rc < times * uint64_t(-delta)) {
                std::snprintf(buf, sizeof buf, "qcow2: refcount underflow on cluster %" PRIu64, c);
                co_return Error::corrupt(buf);
            }
            value = rc - times * uint64_t(-delta);
        } else {
            if (refcount_max() - rc < times * uint64_t(delta))
                // e.g. a snapshot of an image with 1-bit refcounts; QEMU
                // fails the same way (EINVAL).
                co_return Error{ErrorKind::InvalidArgument, "qcow2: refcount overflow", EINVAL};
            value = rc + times * uint64_t(delta);
        }
        updates.push_back({c, value});
        i = j;
    }
    co_return updates;
}

Task<Result<void>> Qcow2Node::apply_refcount_delta(std::vector<uint64_t> clusters, int64_t delta,
                                                   std::vector<uint64_t>* freed)
{
    std::vector<RefcountUpdate> updates = CO_TRY(co_await plan_refcount_delta(std::move(clusters), delta));
    // One write per refcount block.
    uint64_t per_block = refblock_entries();
    uint64_t bits = 1ull << m_header.refcount_order;
    for (size_t i = 0; i < updates.size();) {
        uint64_t t = updates[i].cluster / per_block;
        uint64_t off = m_reftable[t] & k_reftable_offset_mask; // exists: the plan read a non-zero count there
        TablePtr block = CO_TRY(co_await m_refcount_cache->get(off));
        uint64_t lo = updates[i].cluster % per_block, hi = lo;
        for (; i < updates.size() && updates[i].cluster / per_block == t; ++i) {
            uint64_t idx = updates[i].cluster % per_block;
            refblock_set(*block, idx, updates[i].value);
            hi = idx;
        }
        CO_TRY(co_await m_refcount_cache->write(*block, lo * bits / 8, ((hi + 1) * bits + 7) / 8));
        note_write();
    }
    for (const RefcountUpdate& u : updates) {
        if (u.value != 0)
            continue;
        // Same bookkeeping as set_refcounts: the cluster may be handed out
        // again, and it is no longer an L2 table or a compressed target.
        m_l2_cache->drop(u.cluster << m_cluster_bits);
        if (u.cluster < m_free_cluster_hint)
            m_free_cluster_hint = u.cluster;
        if (m_free_byte_offset && (m_free_byte_offset >> m_cluster_bits) == u.cluster)
            m_free_byte_offset = 0;
        if (freed)
            freed->push_back(u.cluster);
    }
    co_return ok();
}

Task<void> Qcow2Node::discard_freed(const std::vector<uint64_t>& clusters)
{
    // As QEMU's pass-discard-snapshot=on: give freed space back to the
    // host. Advisory, so failures are ignored.
    for (uint64_t c : clusters)
        (void)co_await m_file->pdiscard(c << m_cluster_bits, m_cluster_size);
}

Task<Result<void>> Qcow2Node::update_copied_flags(CopiedMode mode)
{
    bool l1_changed = false;
    for (uint64_t i = 0; i < m_l1.size(); ++i) {
        uint64_t l2_off = m_l1[i] & k_l1e_offset_mask;
        if (!l2_off)
            continue;
        CO_TRY(check_l2_offset(l2_off, i));
        TablePtr table = CO_TRY(co_await m_l2_cache->get(l2_off));
        uint64_t lo = m_l2_entries, hi = 0;
        for (uint64_t j = 0; j < m_l2_entries; ++j) {
            uint64_t e = l2_get(*table, j);
            ClusterType t = type_of(e);
            if (t != ClusterType::Normal && t != ClusterType::ZeroAlloc)
                continue;
            bool own = false;
            if (mode == CopiedMode::FromRefcounts)
                own = CO_TRY(co_await get_refcount((e & k_l2e_offset_mask) >> m_cluster_bits)) == 1;
            uint64_t ne = own ? (e | k_oflag_copied) : (e & ~k_oflag_copied);
            if (ne == e)
                continue;
            l2_set(*table, j, ne);
            lo = std::min(lo, j);
            hi = j;
        }
        if (lo <= hi) {
            CO_TRY(co_await m_l2_cache->write(*table, lo * m_l2_entry_bytes, (hi + 1) * m_l2_entry_bytes));
            note_write();
        }
        bool own = false;
        if (mode == CopiedMode::FromRefcounts)
            own = CO_TRY(co_await get_refcount(l2_off >> m_cluster_bits)) == 1;
        uint64_t ne = own ? (m_l1[i] | k_oflag_copied) : (m_l1[i] & ~k_oflag_copied);
        if (ne != m_l1[i]) {
            m_l1[i] = ne;
            l1_changed = true;
        }
    }
    if (l1_changed)
        CO_TRY(co_await write_l1_table());
    co_return ok();
}

Task<Result<void>> Qcow2Node::write_l1_table()
{
    uint64_t align = std::min<uint64_t>(std::max<uint64_t>(512, m_file->request_alignment()), m_cluster_size);
    // The table owns whole clusters, so rounding up stays inside them.
    std::vector<uint8_t> raw(align_up(std::max<uint64_t>(m_l1.size() * 8, 1), align), 0);
    for (size_t i = 0; i < m_l1.size(); ++i)
        store_be64(&raw[i * 8], m_l1[i]);
    CO_TRY(co_await m_file->pwritev(m_l1_offset, QIov(raw.data(), raw.size()), RequestFlags::None));
    note_write();
    co_return ok();
}

} // namespace kiln::block::qcow2
