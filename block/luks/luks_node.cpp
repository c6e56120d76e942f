#include "block/luks/luks_node.h"

#include <algorithm>

#include "block/crypto/secure_bytes.h"
#include "block/luks/area_amend.h"

namespace kiln::block {

namespace {

constexpr uint64_t k_sector_bytes = crypto::SectorCipher::k_sector_bytes;
// Requests are encrypted through a bounce buffer of at most this size.
constexpr uint64_t k_chunk_bytes = 1 << 20;

Result<void> check_open_options(const OptionList& options)
{
    static const char* const k_generic[] = { "driver", "node-name", "read-only", "auto-read-only", "force-share",
        "discard", "detect-zeroes", "cache.direct", "cache.no-flush", "filename", "key-secret" };
    for (auto& [key, value] : options.entries()) {
        if (key.rfind("file.", 0) == 0 || key == "file")
            continue;
        if (std::find(std::begin(k_generic), std::end(k_generic), key) == std::end(k_generic))
            return Error::invalid("Block format 'luks' does not support the option '" + key + "'");
    }
    return ok();
}

// One bounce-buffer step of a request: bytes [pos, stop) of it live in the
// whole sectors [start, aligned_stop).
struct Chunk {
    uint64_t start, stop, aligned_stop;
};

Chunk chunk_at(uint64_t pos, uint64_t end)
{
    Chunk c;
    c.start = pos / k_sector_bytes * k_sector_bytes;
    c.stop = std::min(end, c.start + k_chunk_bytes);
    c.aligned_stop = (c.stop + k_sector_bytes - 1) / k_sector_bytes * k_sector_bytes;
    return c;
}

} // namespace

Task<Result<std::unique_ptr<BlockNode>>> LuksNode::open(
    BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec)
{
    CO_TRY(check_open_options(spec.options));
    std::vector<uint8_t> head(crypto::k_luks_header_bytes);
    if (file->size_bytes() < head.size())
        co_return Error::corrupt("Could not read LUKS header from '" + file->filename() + "': file is too short");
    CO_TRY(co_await file->preadv(0, QIov(head.data(), head.size())));
    auto header = crypto::LuksHeader::parse(head);
    if (!header)
        co_return std::move(header).error();
    if (header->payload_offset_bytes() > file->size_bytes())
        co_return Error::corrupt("LUKS payload offset " + std::to_string(header->payload_offset_bytes())
            + " is beyond the end of '" + file->filename() + "'");

    std::unique_ptr<LuksNode> node(new LuksNode(ctx));
    node->m_header = *header;
    node->m_payload_offset_bytes = header->payload_offset_bytes();
    auto secret_id = spec.options.get("key-secret");
    if (!secret_id && !spec.flags.no_io)
        co_return Error::invalid("Parameter 'key-secret' is required for cipher");
    if (secret_id) {
        std::string passphrase = CO_TRY(ctx.secret(*secret_id));
        crypto::SecureBytes area(header->key_material_end_bytes());
        auto read = co_await file->preadv(0, QIov(area.data(), area.size()));
        if (!read) {
            crypto::wipe_string(passphrase);
            co_return std::move(read).error();
        }
        // PBKDF2 over up to 8 slots takes seconds by design: off the loop.
        auto volume = co_await ctx.pool().run([&] {
            return crypto::luks_unlock(
                area.span(), std::span(reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size()));
        });
        crypto::wipe_string(passphrase);
        if (!volume)
            co_return std::move(volume).error();
        node->m_cipher = std::move(volume->cipher);
        node->m_key_secret_id = *secret_id;
    }
    node->set_read_only(file->read_only());
    node->m_file = std::move(file);
    co_return std::unique_ptr<BlockNode>(std::move(node));
}

uint64_t LuksNode::size_bytes() const
{
    uint64_t file_size = m_file->size_bytes();
    return file_size > m_payload_offset_bytes ? file_size - m_payload_offset_bytes : 0;
}

Result<const crypto::SectorCipher*> LuksNode::cipher() const
{
    if (!m_cipher)
        return Error::invalid("Parameter 'key-secret' is required for cipher");
    return &*m_cipher;
}

Task<Result<void>> LuksNode::read_sectors(uint64_t offset, std::span<uint8_t> buf)
{
    const crypto::SectorCipher* c = CO_TRY(cipher());
    CO_TRY(co_await m_file->preadv(m_payload_offset_bytes + offset, QIov(buf.data(), buf.size())));
    co_return co_await context().pool().run([&] { return c->decrypt(offset / k_sector_bytes, buf); });
}

Task<Result<void>> LuksNode::write_sectors(uint64_t offset, std::span<uint8_t> buf, RequestFlags flags)
{
    const crypto::SectorCipher* c = CO_TRY(cipher());
    CO_TRY(co_await context().pool().run([&] { return c->encrypt(offset / k_sector_bytes, buf); }));
    co_return co_await m_file->pwritev(m_payload_offset_bytes + offset, QIov(buf.data(), buf.size()), flags);
}

Task<Result<void>> LuksNode::preadv(uint64_t offset, QIov qiov)
{
    uint64_t end = offset + qiov.size();
    uint64_t pos = offset;
    std::vector<uint8_t> bounce;
    while (pos < end) {
        const Chunk c = chunk_at(pos, end);
        const uint64_t start = c.start, stop = c.stop, aligned_stop = c.aligned_stop;
        bounce.resize(aligned_stop - start);
        CO_TRY(co_await read_sectors(start, bounce));
        qiov.copy_in(pos - offset, bounce.data() + (pos - start), stop - pos);
        pos = stop;
    }
    co_return ok();
}

Task<Result<void>> LuksNode::pwritev(uint64_t offset, QIov qiov, RequestFlags flags)
{
    if (read_only())
        co_return Error(ErrorKind::PermissionDenied, "Image '" + filename() + "' is read-only", EACCES);
    uint64_t end = offset + qiov.size();
    uint64_t pos = offset;
    std::vector<uint8_t> bounce;
    while (pos < end) {
        const Chunk c = chunk_at(pos, end);
        const uint64_t start = c.start, stop = c.stop, aligned_stop = c.aligned_stop;
        bounce.resize(aligned_stop - start);
        // Partial sectors at either edge: decrypt what is there first.
        // (Concurrent unaligned writes to one sector race, as in QEMU
        // without its request serialisation; guests write whole sectors.)
        bool head = start != pos;
        bool tail = aligned_stop != stop;
        if (head)
            CO_TRY(co_await read_sectors(start, std::span(bounce.data(), k_sector_bytes)));
        if (tail && !(head && aligned_stop - k_sector_bytes == start))
            CO_TRY(co_await read_sectors(aligned_stop - k_sector_bytes,
                std::span(bounce.data() + bounce.size() - k_sector_bytes, k_sector_bytes)));
        qiov.copy_out(pos - offset, bounce.data() + (pos - start), stop - pos);
        CO_TRY(co_await write_sectors(start, bounce, flags));
        pos = stop;
    }
    co_return ok();
}

Task<Result<void>> LuksNode::truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok)
{
    if (new_size % k_sector_bytes)
        co_return Error::invalid("The new size must be a multiple of 512");
    co_return co_await m_file->truncate(m_payload_offset_bytes + new_size, prealloc, shrink_ok);
}

nlohmann::json LuksNode::format_specific_info() const
{
    return nlohmann::json { { "type", "luks" }, { "data", m_header.info() } };
}

Task<Result<void>> LuksNode::amend(const OptionList& options, AmendFlags flags)
{
    for (const auto& [key, value] : options.entries())
        if (std::find(std::begin(crypto::k_luks_amend_keys), std::end(crypto::k_luks_amend_keys), key)
            == std::end(crypto::k_luks_amend_keys))
            co_return Error::invalid("Invalid parameter '" + key + "'");
    if (read_only())
        co_return Error { ErrorKind::PermissionDenied, "Block node is read-only", EPERM };
    auto parsed = crypto::parse_luks_amend_options(options, "");
    if (!parsed)
        co_return std::move(parsed).error();
    CO_TRY(cipher());
    LuksAreaLocation where { 0, m_payload_offset_bytes };
    m_header = CO_TRY(co_await amend_luks_area(context(), *m_file, where, m_header, *parsed, m_key_secret_id, flags));
    co_return ok();
}

} // namespace kiln::block
