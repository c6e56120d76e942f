// The `luks` format: a LUKS1 header and key slots, then the payload, each
// 512-byte sector encrypted with the master key and its sector number
// counted from the payload start (as QEMU's block/crypto.c does).
#pragma once

#include <memory>
#include <optional>

#include "block/context.h"
#include "block/crypto/luks.h"

namespace kiln::block {

class LuksNode final : public BlockNode {
public:
    static Task<Result<std::unique_ptr<BlockNode>>> open(
        BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec);

    std::string_view driver_name() const override { return "luks"; }
    std::string filename() const override { return m_file->filename(); }
    uint64_t size_bytes() const override;

    Task<Result<void>> preadv(uint64_t offset, QIov qiov) override;
    Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags flags) override;
    Task<Result<void>> truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok) override;
    uint32_t request_alignment() const override { return 512; }
    nlohmann::json format_specific_info() const override;
    // qemu-img amend -o state=...,new-secret=...: key slot management.
    Task<Result<void>> amend(const OptionList& options, AmendFlags flags) override;

private:
    explicit LuksNode(BlockContext& ctx)
        : BlockNode(ctx)
    {
    }

    Result<const crypto::SectorCipher*> cipher() const;
    // Reads/writes whole sectors [offset, offset+buf.size()) of the payload.
    Task<Result<void>> read_sectors(uint64_t offset, std::span<uint8_t> buf);
    Task<Result<void>> write_sectors(uint64_t offset, std::span<uint8_t> buf, RequestFlags flags);

    crypto::LuksHeader m_header;
    // Absent when opened for metadata only (qemu-img info without a secret).
    std::optional<crypto::SectorCipher> m_cipher;
    uint64_t m_payload_offset_bytes = 0;
    // The id (not the value) of the secret that unlocked the volume:
    // adding a key slot unlocks the master key with it again, as QEMU does.
    std::string m_key_secret_id;
};

} // namespace kiln::block
