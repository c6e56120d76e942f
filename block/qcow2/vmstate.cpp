// VM state of internal snapshots (savevm/loadvm). As in QEMU, the state is
// stored like guest data at guest offsets past the end of the virtual disk,
// from the first L1 entry that maps no disk cluster on: save_vmstate writes
// it into the active L1 tree, snapshot_create then shares it with the new
// snapshot (and drops it from the active tree), and after snapshot_goto
// load_vmstate reads it back from the reverted active tree.
//
// savevm: save_vmstate(0.., stream) then snapshot_create(info with
// vm_state_size = stream length). loadvm: snapshot_goto(name), then
// load_vmstate(0, vm_state_size bytes).
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

uint64_t Qcow2Node::vm_state_offset() const
{
    uint32_t shift = m_cluster_bits + m_l2_bits;
    return div_round_up(m_size, 1ull << shift) << shift;
}

static Result<void> check_vmstate_range(uint64_t start, uint64_t pos, uint64_t bytes)
{
    if (pos > k_max_image_bytes || bytes > k_max_image_bytes - pos || start > k_max_image_bytes - pos - bytes)
        return Error{ErrorKind::InvalidArgument, "qcow2: VM state offset out of range", EINVAL};
    return ok();
}

Task<Result<void>> Qcow2Node::save_vmstate(uint64_t pos, QIov qiov)
{
    if (read_only() || m_snapshot_loaded)
        co_return Error{ErrorKind::PermissionDenied, "Block node is read-only", EPERM};
    if (m_data_file)
        co_return Error::not_supported("qcow2: VM state is not supported with an external data file");
    CO_TRY(check_vmstate_range(vm_state_offset(), pos, qiov.size()));
    co_return co_await pwritev(vm_state_offset() + pos, std::move(qiov), RequestFlags::None);
}

Task<Result<void>> Qcow2Node::load_vmstate(uint64_t pos, QIov qiov)
{
    CO_TRY(check_vmstate_range(vm_state_offset(), pos, qiov.size()));
    co_return co_await preadv(vm_state_offset() + pos, std::move(qiov));
}

} // namespace kiln::block::qcow2
