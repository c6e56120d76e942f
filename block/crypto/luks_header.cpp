#include "block/crypto/luks_header.h"

#include <algorithm>
#include <cstring>

#include "block/crypto/pbkdf2.h"

namespace kiln::block::crypto {

namespace {

constexpr uint8_t k_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
constexpr size_t k_name_bytes = 32;
constexpr size_t k_uuid_bytes = 40;
constexpr size_t k_slots_offset = 208;
constexpr size_t k_slot_bytes = 48;

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put_be32(uint8_t* p, uint32_t v)
{
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}

// A fixed-size NUL-padded field; an unterminated one is taken whole.
std::string field_string(const uint8_t* p, size_t len)
{
    const uint8_t* end = std::find(p, p + len, 0);
    return std::string(p, end);
}

void put_string(uint8_t* p, size_t len, const std::string& s) { std::memcpy(p, s.data(), std::min(len - 1, s.size())); }

uint64_t slot_sectors(uint64_t split_key_bytes)
{
    return (split_key_bytes + k_luks_sector_bytes - 1) / k_luks_sector_bytes;
}

Result<void> validate_slots(const LuksHeader& h)
{
    const uint64_t header_sectors = (k_luks_header_bytes + k_luks_sector_bytes - 1) / k_luks_sector_bytes;
    const uint64_t len = slot_sectors(h.split_key_bytes());
    for (size_t i = 0; i < k_luks_num_slots; ++i) {
        const LuksKeySlot& s = h.slots[i];
        std::string name = "LUKS keyslot " + std::to_string(i);
        if (s.active != k_luks_slot_active && s.active != k_luks_slot_inactive)
            return Error::corrupt(name + " state (active/disable) is corrupted");
        if (s.stripes != k_luks_stripes)
            return Error::corrupt(name + " is corrupted (stripes " + std::to_string(s.stripes)
                + " != " + std::to_string(k_luks_stripes) + ")");
        if (!s.is_active())
            continue;
        if (s.iterations == 0 || s.iterations > k_max_pbkdf2_iterations)
            return Error::corrupt(name + " has an invalid iteration count " + std::to_string(s.iterations));
        uint64_t start = s.key_offset_sectors;
        if (start < header_sectors)
            return Error::corrupt(name + " overlaps the LUKS header");
        if (start + len > h.payload_offset_sectors)
            return Error::corrupt(name + " is overlapping with the encrypted payload");
        for (size_t j = 0; j < i; ++j) {
            const LuksKeySlot& o = h.slots[j];
            if (o.is_active() && start < o.key_offset_sectors + len && o.key_offset_sectors < start + len)
                return Error::corrupt("LUKS keyslots " + std::to_string(j) + " and " + std::to_string(i)
                    + " are overlapping in the header");
        }
    }
    if (h.key_material_end_bytes() > k_luks_max_key_material_end_bytes)
        return Error::corrupt("LUKS key material ends at " + std::to_string(h.key_material_end_bytes())
            + " bytes, beyond the supported " + std::to_string(k_luks_max_key_material_end_bytes));
    return ok();
}

} // namespace

bool is_luks_magic(std::span<const uint8_t> bytes)
{
    return bytes.size() >= sizeof k_magic && std::equal(k_magic, k_magic + sizeof k_magic, bytes.begin());
}

Result<LuksHeader> LuksHeader::parse(std::span<const uint8_t> bytes)
{
    if (bytes.size() < k_luks_header_bytes)
        return Error::corrupt("LUKS header is truncated (" + std::to_string(bytes.size()) + " of "
            + std::to_string(k_luks_header_bytes) + " bytes)");
    if (!is_luks_magic(bytes))
        return Error::corrupt("Volume is not in LUKS format");
    const uint8_t* p = bytes.data();
    LuksHeader h;
    h.version = uint16_t(p[6] << 8 | p[7]);
    if (h.version != 1)
        return Error::not_supported("Unsupported LUKS version " + std::to_string(h.version));
    h.cipher_name = field_string(p + 8, k_name_bytes);
    h.cipher_mode = field_string(p + 40, k_name_bytes);
    h.hash_spec = field_string(p + 72, k_name_bytes);
    h.payload_offset_sectors = be32(p + 104);
    h.key_bytes = be32(p + 108);
    std::memcpy(h.mk_digest.data(), p + 112, k_luks_digest_bytes);
    std::memcpy(h.mk_digest_salt.data(), p + 132, k_luks_salt_bytes);
    h.mk_digest_iterations = be32(p + 164);
    h.uuid = field_string(p + 168, k_uuid_bytes);
    for (size_t i = 0; i < k_luks_num_slots; ++i) {
        const uint8_t* s = p + k_slots_offset + i * k_slot_bytes;
        LuksKeySlot& slot = h.slots[i];
        slot.active = be32(s);
        slot.iterations = be32(s + 4);
        std::memcpy(slot.salt.data(), s + 8, k_luks_salt_bytes);
        slot.key_offset_sectors = be32(s + 40);
        slot.stripes = be32(s + 44);
    }
    h.cipher = TRY(parse_luks_cipher(h.cipher_name, h.cipher_mode, h.key_bytes));
    auto hash = parse_hash_alg(h.hash_spec);
    if (!hash || !hash_evp(*hash))
        return Error::not_supported("LUKS hash algorithm '" + h.hash_spec + "' is not supported");
    h.hash = *hash;
    if (h.mk_digest_iterations == 0 || h.mk_digest_iterations > k_max_pbkdf2_iterations)
        return Error::corrupt(
            "LUKS master key digest has an invalid iteration count " + std::to_string(h.mk_digest_iterations));
    TRY(validate_slots(h));
    return h;
}

std::array<uint8_t, k_luks_header_bytes> LuksHeader::serialize() const
{
    std::array<uint8_t, k_luks_header_bytes> out {};
    uint8_t* p = out.data();
    std::memcpy(p, k_magic, sizeof k_magic);
    p[6] = uint8_t(version >> 8);
    p[7] = uint8_t(version);
    put_string(p + 8, k_name_bytes, cipher_name);
    put_string(p + 40, k_name_bytes, cipher_mode);
    put_string(p + 72, k_name_bytes, hash_spec);
    put_be32(p + 104, payload_offset_sectors);
    put_be32(p + 108, key_bytes);
    std::memcpy(p + 112, mk_digest.data(), k_luks_digest_bytes);
    std::memcpy(p + 132, mk_digest_salt.data(), k_luks_salt_bytes);
    put_be32(p + 164, mk_digest_iterations);
    put_string(p + 168, k_uuid_bytes, uuid);
    for (size_t i = 0; i < k_luks_num_slots; ++i) {
        uint8_t* s = p + k_slots_offset + i * k_slot_bytes;
        put_be32(s, slots[i].active);
        put_be32(s + 4, slots[i].iterations);
        std::memcpy(s + 8, slots[i].salt.data(), k_luks_salt_bytes);
        put_be32(s + 40, slots[i].key_offset_sectors);
        put_be32(s + 44, slots[i].stripes);
    }
    return out;
}

uint64_t LuksHeader::key_material_end_bytes() const
{
    uint64_t end = 0;
    for (auto& s : slots)
        if (s.is_active())
            end = std::max(end, uint64_t(s.key_offset_sectors) * k_luks_sector_bytes + split_key_bytes());
    return end;
}

nlohmann::json LuksHeader::info() const
{
    nlohmann::json data;
    data["cipher-alg"] = cipher_alg_name(cipher.alg);
    data["cipher-mode"] = cipher_mode_name(cipher.mode);
    data["ivgen-alg"] = ivgen_alg_name(cipher.ivgen);
    if (cipher.ivgen_hash)
        data["ivgen-hash-alg"] = hash_alg_name(*cipher.ivgen_hash);
    data["hash-alg"] = hash_alg_name(hash);
    data["payload-offset"] = payload_offset_bytes();
    data["master-key-iters"] = mk_digest_iterations;
    data["uuid"] = uuid;
    nlohmann::json list = nlohmann::json::array();
    for (auto& s : slots) {
        nlohmann::json slot;
        slot["active"] = s.is_active();
        if (s.is_active()) {
            slot["iters"] = s.iterations;
            slot["stripes"] = s.stripes;
        }
        slot["key-offset"] = uint64_t(s.key_offset_sectors) * k_luks_sector_bytes;
        list.push_back(slot);
    }
    data["slots"] = list;
    return data;
}

} // namespace kiln::block::crypto
