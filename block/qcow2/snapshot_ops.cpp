// Internal snapshots: create, revert (goto) and delete, as QEMU's
// qcow2-snapshot.c does them, in an order that keeps the image usable if
// the process dies at any instant:
//
// - Every L1 tree the operation will touch is walked (and its offsets and
//   refcounts validated) before the first write, so a hostile image fails
//   with a clean error and no change.
// - The dirty bit (v3) is set for the duration: a crash leaves at worst
//   leaked clusters and OFLAG_COPIED flags that are clear where they could
//   be set (which only costs a needless copy-on-write), and the next
//   read-write open, by Kiln or QEMU, repairs both.
// - References are added before anything new points at them (refcounts
//   +1, flush, then the snapshot table or the active L1) and dropped only
//   after nothing points at them any more.
#include <cstdlib>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

Error read_only_error() { return {ErrorKind::PermissionDenied, "Block node is read-only", EPERM}; }

// QEMU's find_new_snapshot_id: one more than the largest numeric id.
std::string new_snapshot_id(const std::vector<Snapshot>& list)
{
    unsigned long max_id = 0;
    for (const auto& sn : list) {
        unsigned long id = std::strtoul(sn.info.id.c_str(), nullptr, 10);
        max_id = std::max(max_id, id);
    }
    return std::to_string(max_id + 1);
}

std::vector<uint64_t> without_copied(std::vector<uint64_t> l1)
{
    for (uint64_t& e : l1)
        e &= ~k_oflag_copied;
    return l1;
}

} // namespace

Task<Result<void>> Qcow2Node::snapshot_create(SnapshotInfo info)
{
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    if (m_data_file)
        co_return Error::not_supported("qcow2: internal snapshots are not supported with an external data file");
    if (m_snapshots.size() >= k_max_snapshots)
        co_return Error{ErrorKind::NoSpace, "qcow2: too many snapshots", EFBIG};
    if (info.id.empty())
        info.id = new_snapshot_id(m_snapshots);
    else if (find_snapshot(info.id, "") >= 0)
        co_return Error{ErrorKind::InvalidArgument, "qcow2: snapshot ID '" + info.id + "' already exists", EEXIST};
    if (info.id.size() > UINT16_MAX || info.name.size() > UINT16_MAX)
        co_return Error::invalid("qcow2: snapshot name too long");
    info.disk_size = m_size;

    {
        auto guard = co_await co_lock(m_meta_lock);
        CO_TRY(co_await commit_metadata());
        std::vector<uint64_t> refs = CO_TRY(co_await tree_clusters(m_l1));
        (void)CO_TRY(co_await plan_refcount_delta(refs, +1));
        CO_TRY(co_await set_dirty_bit(true));

        Snapshot sn;
        sn.info = info;
        sn.l1_size = uint32_t(m_l1.size());
        if (sn.l1_size) {
            uint64_t clusters = div_round_up(uint64_t(sn.l1_size) * 8, m_cluster_size);
            sn.l1_table_offset = CO_TRY(co_await alloc_clusters(clusters));
            uint64_t align = std::min<uint64_t>(std::max<uint64_t>(512, m_file->request_alignment()), m_cluster_size);
            std::vector<uint8_t> raw(align_up(uint64_t(sn.l1_size) * 8, align), 0);
            std::vector<uint64_t> copy = without_copied(m_l1);
            for (size_t i = 0; i < copy.size(); ++i)
                store_be64(&raw[i * 8], copy[i]);
            CO_TRY(co_await m_file->pwritev(sn.l1_table_offset, QIov(raw.data(), raw.size()), RequestFlags::None));
            note_write();
        }
        // Everything the active L1 reaches becomes shared: clear COPIED
        // (harmless while the counts are still 1), count the snapshot's
        // references, then publish the snapshot; write_snapshot_table
        // flushes all of it before the header points at the new table.
        CO_TRY(co_await update_copied_flags(CopiedMode::ClearAll));
        CO_TRY(co_await apply_refcount_delta(std::move(refs), +1, nullptr));

        std::vector<Snapshot> list = m_snapshots;
        list.push_back(std::move(sn));
        CO_TRY(co_await write_snapshot_table(std::move(list)));
        // Packed compressed data must not go into a cluster a snapshot
        // now shares.
        m_free_byte_offset = 0;
        CO_TRY(co_await set_dirty_bit(false));
    }
    // The VM state now belongs to the snapshot; keeping it in the active
    // L1 would only cost copy-on-write later (QEMU drops it too).
    if (info.vm_state_size)
        CO_TRY(co_await zero_or_discard_clusters(vm_state_offset(), align_up(info.vm_state_size, m_cluster_size),
                                                 true, true));
    co_return ok();
}

Task<Result<void>> Qcow2Node::snapshot_goto(const std::string& id_or_name)
{
    // QEMU refuses before anything else while any bitmap exists (bitmaps.cpp).
    CO_TRY(check_no_bitmaps_for_snapshot_goto());
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    if (m_data_file)
        co_return Error::not_supported("qcow2: internal snapshots are not supported with an external data file");
    int index = find_snapshot_by_id_or_name(id_or_name);
    if (index < 0)
        co_return Error::not_found("Can't find snapshot");
    Snapshot sn = m_snapshots[size_t(index)];
    std::vector<uint64_t> sn_l1 = CO_TRY(co_await read_snapshot_l1(sn));
    {
        auto guard = co_await co_lock(m_meta_lock);
        // Validate before changing the size.
        std::vector<uint64_t> refs = CO_TRY(co_await tree_clusters(sn_l1));
        (void)CO_TRY(co_await plan_refcount_delta(std::move(refs), +1));
    }
    if (sn.info.disk_size != m_size)
        CO_TRY(co_await truncate(sn.info.disk_size, PreallocMode::Off, true));

    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    std::vector<uint64_t> sn_refs = CO_TRY(co_await tree_clusters(sn_l1));
    std::vector<uint64_t> old_refs = CO_TRY(co_await tree_clusters(m_l1));
    (void)CO_TRY(co_await plan_refcount_delta(sn_refs, +1));
    (void)CO_TRY(co_await plan_refcount_delta(old_refs, -1));
    CO_TRY(co_await set_dirty_bit(true));
    CO_TRY(co_await apply_refcount_delta(std::move(sn_refs), +1, nullptr));
    CO_TRY(co_await flush_covering(m_write_seq));
    if (sn_l1.size() > m_l1.size())
        CO_TRY(co_await grow_l1(sn_l1.size()));
    CO_TRY(co_await order_after_refcounts());
    // The snapshot's tables are shared with it from now on: COPIED stays
    // clear until the refcounts say otherwise.
    std::vector<uint64_t> new_l1 = without_copied(std::move(sn_l1));
    new_l1.resize(m_l1.size(), 0);
    m_l1 = std::move(new_l1);
    CO_TRY(co_await write_l1_table());
    CO_TRY(co_await flush_covering(m_write_seq));

    std::vector<uint64_t> freed;
    CO_TRY(co_await apply_refcount_delta(std::move(old_refs), -1, &freed));
    // v2 has no dirty bit to repair a COPIED flag set before the count
    // that allows it is on disk.
    if (!m_v3)
        CO_TRY(co_await flush_covering(m_write_seq));
    CO_TRY(co_await update_copied_flags(CopiedMode::FromRefcounts));
    m_free_byte_offset = 0;
    CO_TRY(co_await set_dirty_bit(false));
    co_await discard_freed(freed);
    co_return ok();
}

Task<Result<void>> Qcow2Node::snapshot_delete(const std::string& id, const std::string& name)
{
    if (read_only() || m_snapshot_loaded)
        co_return read_only_error();
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    int index = find_snapshot(id, name);
    if (index < 0)
        co_return Error::not_found("Can't find the snapshot");
    Snapshot sn = m_snapshots[size_t(index)];
    std::vector<uint64_t> sn_l1 = CO_TRY(co_await read_snapshot_l1(sn));
    std::vector<uint64_t> refs = CO_TRY(co_await tree_clusters(sn_l1));
    if (sn.l1_size) {
        uint64_t first = sn.l1_table_offset >> m_cluster_bits;
        for (uint64_t c = 0; c < div_round_up(uint64_t(sn.l1_size) * 8, m_cluster_size); ++c)
            refs.push_back(first + c);
    }
    // Check before the table changes; applied again (fresh counts) after.
    (void)CO_TRY(co_await plan_refcount_delta(refs, -1));
    CO_TRY(co_await set_dirty_bit(true));
    std::vector<Snapshot> list = m_snapshots;
    list.erase(list.begin() + index);
    CO_TRY(co_await write_snapshot_table(std::move(list)));

    std::vector<uint64_t> freed;
    CO_TRY(co_await apply_refcount_delta(std::move(refs), -1, &freed));
    if (!m_v3)
        CO_TRY(co_await flush_covering(m_write_seq));
    // Clusters only the active state still uses become its own again.
    CO_TRY(co_await update_copied_flags(CopiedMode::FromRefcounts));
    CO_TRY(co_await set_dirty_bit(false));
    co_await discard_freed(freed);
    co_return ok();
}

} // namespace kiln::block::qcow2
