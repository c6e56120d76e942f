// The raw format: the guest sees the file's bytes, optionally a window of
// them (offset=, size=, as QEMU's raw driver allows).
#pragma once

#include <memory>

#include "block/context.h"

namespace kiln::block {

class RawNode final : public BlockNode {
public:
    static Result<std::unique_ptr<RawNode>> open(
        BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec);

    std::string_view driver_name() const override { return "raw"; }
    std::string filename() const override { return m_file->filename(); }
    uint64_t size_bytes() const override;

    Task<Result<void>> preadv(uint64_t offset, QIov qiov) override;
    Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags flags) override;
    Task<Result<void>> pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags) override;
    Task<Result<void>> pdiscard(uint64_t offset, uint64_t bytes) override;
    Task<Result<BlockStatus>> block_status(uint64_t offset, uint64_t bytes) override;
    Task<Result<void>> truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok) override;
    uint32_t request_alignment() const override { return m_file->request_alignment(); }
    Task<Result<void>> reopen(bool read_write) override;

    uint64_t offset_bytes() const { return m_offset_bytes; }
    // Set by BlockContext when the format was guessed: as QEMU does, writes
    // that would make block 0 look like another format are then refused,
    // so a guest cannot turn its disk into, say, a qcow2 with a backing
    // file of the host's choosing on the next probe.
    void set_probed(bool probed) { m_probed = probed; }
    bool probed() const { return m_probed; }

private:
    Task<Result<void>> check_block0_write(uint64_t offset, const QIov& qiov);

    explicit RawNode(BlockContext& ctx)
        : BlockNode(ctx)
    {
    }

    uint64_t m_offset_bytes = 0;
    // Set when size= fixed the disk size; otherwise the file decides.
    std::optional<uint64_t> m_fixed_size_bytes;
    bool m_probed = false;
};

} // namespace kiln::block
