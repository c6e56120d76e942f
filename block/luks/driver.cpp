// The luks format driver: probe, open, create and `create -o help`.
#include "block/crypto/secure_bytes.h"
#include "block/luks/luks_node.h"
#include "block/registry.h"

namespace kiln::block {

namespace {

int probe_luks(std::span<const uint8_t> header, const std::string&) { return crypto::is_luks_magic(header) ? 100 : 0; }

Task<Result<void>> write_area(BlockNode& file, const crypto::LuksCreated& created)
{
    // Only the header's first 4 KiB and slot 0's key material: the other
    // slots stay holes, as in QEMU's images.
    const auto& h = created.volume.header;
    std::vector<uint8_t> first(created.area.begin(), created.area.begin() + 4096);
    CO_TRY(co_await file.pwritev(0, QIov(first.data(), first.size()), RequestFlags::None));
    uint64_t slot_offset = uint64_t(h.slots[0].key_offset_sectors) * crypto::k_luks_sector_bytes;
    uint64_t slot_bytes = (h.split_key_bytes() + 511) / 512 * 512;
    std::vector<uint8_t> slot(
        created.area.begin() + ptrdiff_t(slot_offset), created.area.begin() + ptrdiff_t(slot_offset + slot_bytes));
    CO_TRY(co_await file.pwritev(slot_offset, QIov(slot.data(), slot.size()), RequestFlags::None));
    co_return co_await file.flush();
}

Task<Result<void>> create_luks(
    BlockContext& ctx, const std::string& filename, uint64_t size_bytes, const OptionList& options)
{
    // Everything that can fail on the user's input is checked before the
    // file is touched, as QEMU does.
    auto opts = crypto::parse_luks_create_options(options, "");
    if (!opts)
        co_return std::move(opts).error();
    auto secret_id = options.get("key-secret");
    options.consume("key-secret");
    if (!secret_id)
        co_return Error::invalid("Parameter 'key-secret' is required for cipher");
    std::string passphrase = CO_TRY(ctx.secret(*secret_id));
    auto created = co_await ctx.pool().run([&] {
        return crypto::luks_create(
            *opts, std::span(reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size()));
    });
    crypto::wipe_string(passphrase);
    if (!created)
        co_return std::move(created).error();
    uint64_t payload = created->volume.header.payload_offset_bytes();
    CO_TRY(co_await ctx.create_file(filename, payload + size_bytes, PreallocMode::Off, options.subtree("file")));
    OpenFlags flags;
    flags.read_write = true;
    auto file = CO_TRY(co_await ctx.open_file(filename, OptionList {}, flags));
    auto written = co_await write_area(*file, *created);
    auto closed = co_await file->close();
    if (!written)
        co_return std::move(written).error();
    co_return closed;
}

std::vector<CreateOptionInfo> luks_create_options()
{
    // QEMU's order (the "Formatting ..." line follows it; -o help sorts).
    return {
        { "size", "size", "Virtual disk size", "" },
        { "key-secret", "str", "ID of the secret that provides the keyslot passphrase", "" },
        { "cipher-alg", "str", "Name of encryption cipher algorithm", "" },
        { "cipher-mode", "str", "Name of encryption cipher mode", "" },
        { "ivgen-alg", "str", "Name of IV generator algorithm", "" },
        { "ivgen-hash-alg", "str", "Name of IV generator hash algorithm", "" },
        { "hash-alg", "str", "Name of encryption hash algorithm", "" },
        { "iter-time", "num", "Time to spend in PBKDF in milliseconds", "" },
    };
}

} // namespace

const FormatDriver& luks_format_driver()
{
    static const FormatDriver driver { "luks", probe_luks, LuksNode::open, create_luks, luks_create_options };
    return driver;
}

} // namespace kiln::block
