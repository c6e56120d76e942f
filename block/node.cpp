#include "block/node.h"

#include <cstring>
#include <vector>

#include "block/context.h"

namespace kiln::block {

static Error unsupported(const BlockNode& node, const char* what)
{
    return Error::not_supported(std::string(what) + " is not supported by format '"
                                + std::string(node.driver_name()) + "'");
}

Task<Result<void>> BlockNode::pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    if (has_flag(flags, RequestFlags::NoFallback))
        co_return unsupported(*this, "Efficient zero writing");
    constexpr uint64_t chunk = 1 << 20;
    std::vector<char> zeroes(std::min(bytes, chunk), 0);
    while (bytes > 0) {
        uint64_t n = std::min(bytes, chunk);
        CO_TRY(co_await pwritev(offset, QIov(zeroes.data(), n), flags));
        offset += n;
        bytes -= n;
    }
    co_return ok();
}

Task<Result<void>> BlockNode::pdiscard(uint64_t, uint64_t) { co_return ok(); }

Task<Result<void>> BlockNode::flush()
{
    if (m_file)
        co_return co_await m_file->flush();
    co_return ok();
}

Task<Result<BlockStatus>> BlockNode::block_status(uint64_t, uint64_t bytes)
{
    BlockStatus s;
    s.flags = BlockStatus::Data | BlockStatus::Allocated;
    s.bytes = bytes;
    co_return s;
}

Task<Result<void>> BlockNode::truncate(uint64_t, PreallocMode, bool)
{
    co_return unsupported(*this, "Resizing");
}

Result<uint64_t> BlockNode::allocated_size() const
{
    uint64_t total = 0;
    for (BlockNode* child : {m_file.get(), m_data_file.get()})
        if (child)
            total += TRY(child->allocated_size());
    return total;
}

Task<Result<void>> BlockNode::close()
{
    Result<void> result = ok();
    for (BlockNode* child : {m_backing.get(), m_data_file.get(), m_file.get()}) {
        if (!child)
            continue;
        auto r = co_await child->close();
        if (!r && result)
            result = std::move(r);
    }
    co_return result;
}

Task<Result<void>> BlockNode::pwritev_compressed(uint64_t, QIov) { co_return unsupported(*this, "Compression"); }

Task<Result<void>> BlockNode::snapshot_create(SnapshotInfo) { co_return unsupported(*this, "Internal snapshots"); }
Task<Result<void>> BlockNode::snapshot_goto(const std::string&) { co_return unsupported(*this, "Internal snapshots"); }
Task<Result<void>> BlockNode::snapshot_delete(const std::string&, const std::string&)
{
    co_return unsupported(*this, "Internal snapshots");
}
Task<Result<void>> BlockNode::snapshot_load_tmp(const std::string&, const std::string&)
{
    co_return unsupported(*this, "Internal snapshots");
}
Task<Result<void>> BlockNode::make_empty() { co_return unsupported(*this, "Emptying images"); }
Task<Result<void>> BlockNode::amend(const OptionList&, AmendFlags)
{
    co_return Error::not_supported("Format driver '" + std::string(driver_name()) + "' does not support option amendment");
}
Task<Result<void>> BlockNode::reopen(bool) { co_return unsupported(*this, "Reopening"); }
Task<Result<void>> BlockNode::save_vmstate(uint64_t, QIov) { co_return unsupported(*this, "VM state"); }
Task<Result<void>> BlockNode::load_vmstate(uint64_t, QIov) { co_return unsupported(*this, "VM state"); }

Task<Result<CheckResult>> BlockNode::check(CheckFix)
{
    co_return Error::not_supported("This image format does not support checks");
}

Task<Result<BlockStatus>> BlockNode::block_status_above(uint64_t offset, uint64_t bytes, BlockNode* base)
{
    int depth = 0;
    uint64_t want = bytes;
    for (BlockNode* node = this; node && node != base; node = node->backing(), ++depth) {
        if (offset >= node->size_bytes()) {
            // Past the end of a (shorter) backing file reads as zeroes.
            BlockStatus s;
            s.flags = BlockStatus::Zero;
            s.bytes = want;
            co_return s;
        }
        BlockStatus s = CO_TRY(co_await node->block_status(offset, std::min(want, node->size_bytes() - offset)));
        if (s.flags & BlockStatus::Allocated) {
            s.depth = depth;
            co_return s;
        }
        // Unallocated here: look below, but only as far as this run goes.
        want = s.bytes;
    }
    // Unallocated in every layer: reads return zeroes.
    BlockStatus s;
    s.flags = BlockStatus::Zero;
    s.bytes = want;
    co_return s;
}

} // namespace kiln::block
