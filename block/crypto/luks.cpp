#include "block/crypto/luks.h"

#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "block/crypto/af_split.h"
#include "block/crypto/pbkdf2.h"

namespace kiln::block::crypto {

namespace {

// QEMU's floors, so that a very short iter-time still gives some work.
constexpr uint64_t k_min_slot_iterations = 1000;
constexpr uint64_t k_min_digest_iterations = 1000;
// QEMU spends an eighth of iter-time on the master key digest.
constexpr uint64_t k_digest_iterations_divisor = 8;
// Key material is aligned to 4 KiB (8 sectors), as QEMU and cryptsetup do.
constexpr uint32_t k_align_sectors = 8;
constexpr uint32_t k_first_slot_sector = 4096 / k_luks_sector_bytes;

template<typename E>
Result<E> enum_option(
    const OptionList& options, const std::string& key, E fallback, std::optional<E> (*parse)(std::string_view))
{
    auto text = options.get(key);
    options.consume(key);
    if (!text)
        return fallback;
    auto value = parse(*text);
    if (value)
        return *value;
    // Ciphers QEMU's QAPI enum names but Kiln (AES only) lacks.
    static const char* const k_qemu_ciphers[] = {"des", "3des", "cast5-128", "serpent-128", "serpent-192",
        "serpent-256", "twofish-128", "twofish-192", "twofish-256", "sm4"};
    if (key.ends_with("cipher-alg"))
        for (const char* name : k_qemu_ciphers)
            if (*text == name)
                return Error::not_supported("Algorithm '" + *text + "' not supported");
    return Error::invalid("Parameter '" + key + "' does not accept value '" + *text + "'");
}

Result<std::string> random_uuid()
{
    uint8_t b[16];
    TRY(random_bytes(b));
    b[6] = uint8_t((b[6] & 0x0f) | 0x40); // version 4
    b[8] = uint8_t((b[8] & 0x3f) | 0x80); // RFC 4122 variant
    char text[37];
    std::snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
        b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return std::string(text);
}

Result<std::array<uint8_t, k_luks_digest_bytes>> master_key_digest(
    const LuksHeader& h, std::span<const uint8_t> master_key)
{
    std::array<uint8_t, k_luks_digest_bytes> digest {};
    TRY(pbkdf2(h.hash, master_key, h.mk_digest_salt, h.mk_digest_iterations, digest));
    return digest;
}

} // namespace

Result<void> random_bytes(std::span<uint8_t> out)
{
    if (RAND_bytes(out.data(), int(out.size())) != 1)
        return Error::internal("Cannot generate random data");
    return ok();
}

Result<SecureBytes> luks_try_keyslot(
    const LuksHeader& h, size_t i, std::span<const uint8_t> area, std::span<const uint8_t> passphrase)
{
    if (!h.slots[i].is_active())
        return SecureBytes();
    const LuksKeySlot& slot = h.slots[i];
    SecureBytes slot_key(h.key_bytes);
    TRY(pbkdf2(h.hash, passphrase, slot.salt, slot.iterations, slot_key.span()));
    uint64_t offset = uint64_t(slot.key_offset_sectors) * k_luks_sector_bytes;
    SecureBytes split(area.subspan(offset, h.split_key_bytes()));
    SectorCipher slot_cipher = TRY(SectorCipher::create(h.cipher, slot_key.span()));
    TRY(slot_cipher.decrypt(0, split.span()));
    SecureBytes candidate(h.key_bytes);
    TRY(af_merge(h.hash, split.span(), slot.stripes, candidate.span()));
    auto digest = TRY(master_key_digest(h, candidate.span()));
    if (CRYPTO_memcmp(digest.data(), h.mk_digest.data(), digest.size()) != 0)
        return SecureBytes();
    return candidate;
}

Result<SecureBytes> luks_store_keyslot(LuksHeader& h, size_t i, std::span<const uint8_t> master_key,
    std::span<const uint8_t> passphrase, uint64_t iterations)
{
    LuksKeySlot& slot = h.slots[i];
    slot.iterations = uint32_t(iterations);
    slot.stripes = k_luks_stripes;
    TRY(random_bytes(slot.salt));
    SecureBytes slot_key(h.key_bytes);
    TRY(pbkdf2(h.hash, passphrase, slot.salt, slot.iterations, slot_key.span()));
    SecureBytes split(h.split_key_bytes());
    TRY(af_split(h.hash, master_key, slot.stripes, split.span()));
    SectorCipher slot_cipher = TRY(SectorCipher::create(h.cipher, slot_key.span()));
    TRY(slot_cipher.encrypt(0, split.span()));
    slot.active = k_luks_slot_active;
    return split;
}

Result<uint64_t> luks_slot_iterations(const LuksHeader& h, uint64_t iter_time_ms)
{
    return pbkdf2_iterations_for(h.hash, h.key_bytes, iter_time_ms, k_min_slot_iterations);
}

Result<LuksCreateOptions> parse_luks_create_options(const OptionList& options, std::string_view prefix)
{
    std::string p(prefix);
    LuksCreateOptions o;
    o.cipher.alg = TRY(enum_option(options, p + "cipher-alg", CipherAlg::Aes256, parse_cipher_alg));
    o.cipher.mode = TRY(enum_option(options, p + "cipher-mode", CipherMode::Xts, parse_cipher_mode));
    o.cipher.ivgen = TRY(enum_option(options, p + "ivgen-alg", IvGenAlg::Plain64, parse_ivgen_alg));
    if (options.has(p + "ivgen-hash-alg") || o.cipher.ivgen == IvGenAlg::Essiv)
        o.cipher.ivgen_hash = TRY(enum_option(options, p + "ivgen-hash-alg", HashAlg::Sha256, parse_hash_alg));
    if (o.cipher.ivgen != IvGenAlg::Essiv)
        o.cipher.ivgen_hash.reset();
    o.hash = TRY(enum_option(options, p + "hash-alg", HashAlg::Sha256, parse_hash_alg));
    auto iter_time = TRY(options.get_number(p + "iter-time"));
    options.consume(p + "iter-time");
    if (iter_time) {
        if (*iter_time == 0 || *iter_time > 3'600'000)
            return Error::invalid("Parameter '" + p + "iter-time' expects a time in milliseconds (1 to 3600000)");
        o.iter_time_ms = *iter_time;
    }
    TRY(o.cipher.validate());
    if (!hash_evp(o.hash))
        return Error::not_supported(std::string("Hash algorithm '") + hash_alg_name(o.hash) + "' is not supported");
    return o;
}

Result<LuksCreated> luks_create(const LuksCreateOptions& options, std::span<const uint8_t> passphrase)
{
    TRY(options.cipher.validate());
    LuksHeader h;
    h.cipher = options.cipher;
    h.hash = options.hash;
    h.cipher_name = "aes";
    h.cipher_mode = options.cipher.luks_mode_string();
    h.hash_spec = hash_alg_name(options.hash);
    h.key_bytes = uint32_t(options.cipher.key_bytes());
    h.uuid = TRY(random_uuid());

    uint32_t split_sectors = uint32_t((h.split_key_bytes() + k_luks_sector_bytes - 1) / k_luks_sector_bytes);
    uint32_t slot_stride = (split_sectors + k_align_sectors - 1) / k_align_sectors * k_align_sectors;
    for (size_t i = 0; i < k_luks_num_slots; ++i)
        h.slots[i].key_offset_sectors = k_first_slot_sector + uint32_t(i) * slot_stride;
    h.payload_offset_sectors = k_first_slot_sector + uint32_t(k_luks_num_slots) * slot_stride;

    uint64_t slot_iterations = 0;
    if (options.fixed_iterations) {
        slot_iterations = *options.fixed_iterations;
        h.mk_digest_iterations = *options.fixed_iterations;
    } else {
        slot_iterations = TRY(pbkdf2_iterations_for(h.hash, h.key_bytes, options.iter_time_ms, k_min_slot_iterations));
        uint64_t digest = TRY(pbkdf2_iterations_for(h.hash, k_luks_digest_bytes, options.iter_time_ms, 1));
        h.mk_digest_iterations = uint32_t(std::max(digest / k_digest_iterations_divisor, k_min_digest_iterations));
    }

    SecureBytes master_key(h.key_bytes);
    TRY(random_bytes(master_key.span()));
    TRY(random_bytes(h.mk_digest_salt));
    h.mk_digest = TRY(master_key_digest(h, master_key.span()));

    SecureBytes split = TRY(luks_store_keyslot(h, 0, master_key.span(), passphrase, slot_iterations));
    const LuksKeySlot& slot = h.slots[0];

    LuksCreated created { { h, TRY(SectorCipher::create(h.cipher, master_key.span())) }, {} };
    created.area.assign(h.payload_offset_bytes(), 0);
    auto bytes = h.serialize();
    std::copy(bytes.begin(), bytes.end(), created.area.begin());
    std::copy(split.data(), split.data() + split.size(),
        created.area.begin() + ptrdiff_t(uint64_t(slot.key_offset_sectors) * k_luks_sector_bytes));
    return created;
}

Result<LuksVolume> luks_unlock(std::span<const uint8_t> area, std::span<const uint8_t> passphrase)
{
    LuksHeader h = TRY(LuksHeader::parse(area));
    if (area.size() < h.key_material_end_bytes())
        return Error::corrupt("LUKS key material is truncated (" + std::to_string(area.size()) + " of "
            + std::to_string(h.key_material_end_bytes()) + " bytes)");
    for (size_t i = 0; i < k_luks_num_slots; ++i) {
        if (!h.slots[i].is_active())
            continue;
        SecureBytes key = TRY(luks_try_keyslot(h, i, area, passphrase));
        if (!key.empty())
            return LuksVolume { h, TRY(SectorCipher::create(h.cipher, key.span())) };
    }
    return Error(ErrorKind::PermissionDenied, "Invalid password, cannot unlock any keyslot", EACCES);
}

} // namespace kiln::block::crypto
