// The LUKS1 on-disk header ("LUKS On-Disk Format Specification Version
// 1.2.3"): 592 big-endian bytes at the start of the LUKS area, followed by
// the key material of 8 key slots. parse() validates everything a hostile
// image could use to make Kiln read out of bounds or work without end.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "block/crypto/algorithms.h"
#include "util/result.h"

namespace kiln::block::crypto {

constexpr size_t k_luks_header_bytes = 592;
constexpr size_t k_luks_num_slots = 8;
constexpr uint32_t k_luks_stripes = 4000;
constexpr size_t k_luks_sector_bytes = 512;
constexpr size_t k_luks_digest_bytes = 20;
constexpr size_t k_luks_salt_bytes = 32;
constexpr uint32_t k_luks_slot_active = 0x00AC71F3;
constexpr uint32_t k_luks_slot_inactive = 0x0000DEAD;
// Key material past this offset is refused (bounded memory and I/O; real
// headers end near 2 MiB).
constexpr uint64_t k_luks_max_key_material_end_bytes = 64ull << 20;

// True if `bytes` starts with "LUKS\xba\xbe".
bool is_luks_magic(std::span<const uint8_t> bytes);

struct LuksKeySlot {
    uint32_t active = k_luks_slot_inactive;
    uint32_t iterations = 0;
    std::array<uint8_t, k_luks_salt_bytes> salt {};
    uint32_t key_offset_sectors = 0;
    uint32_t stripes = k_luks_stripes;

    bool is_active() const { return active == k_luks_slot_active; }
};

struct LuksHeader {
    uint16_t version = 1;
    std::string cipher_name; // "aes"
    std::string cipher_mode; // "xts-plain64"
    std::string hash_spec; // "sha256"
    uint32_t payload_offset_sectors = 0;
    uint32_t key_bytes = 0;
    std::array<uint8_t, k_luks_digest_bytes> mk_digest {};
    std::array<uint8_t, k_luks_salt_bytes> mk_digest_salt {};
    uint32_t mk_digest_iterations = 0;
    std::string uuid;
    std::array<LuksKeySlot, k_luks_num_slots> slots {};

    // Decoded from the strings by parse() (or set by create).
    CipherSpec cipher;
    HashAlg hash = HashAlg::Sha256;

    // Parses and validates the first k_luks_header_bytes of `bytes`.
    static Result<LuksHeader> parse(std::span<const uint8_t> bytes);
    std::array<uint8_t, k_luks_header_bytes> serialize() const;

    uint64_t payload_offset_bytes() const { return uint64_t(payload_offset_sectors) * k_luks_sector_bytes; }
    // Bytes of one slot's key material (key_bytes * stripes).
    uint64_t split_key_bytes() const { return uint64_t(key_bytes) * k_luks_stripes; }
    // End of the last active slot's key material: what must be read to unlock.
    uint64_t key_material_end_bytes() const;

    // qemu-img info's format-specific data for LUKS (QCryptoBlockInfoLUKS).
    nlohmann::json info() const;
};

} // namespace kiln::block::crypto
