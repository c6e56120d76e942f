// LUKS1 volumes: create a header with a fresh master key in key slot 0,
// and unlock an existing one with a passphrase. Used by the `luks` format
// driver (block/luks/) and by qcow2's encrypt.format=luks (see
// docs/encryption.md, "API for qcow2").
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "block/crypto/luks_header.h"
#include "block/crypto/sector_cipher.h"
#include "util/options.h"

namespace kiln::block::crypto {

struct LuksCreateOptions {
    CipherSpec cipher; // aes-256, xts, plain64
    HashAlg hash = HashAlg::Sha256; // PBKDF2 and AF-split hash
    uint64_t iter_time_ms = 2000; // PBKDF2 time budget per slot
    std::optional<uint32_t> fixed_iterations; // tests: skip calibration
};

// QEMU's creation options, read from `options` under `prefix` ("" for
// the luks driver, "encrypt." for qcow2): cipher-alg, cipher-mode,
// ivgen-alg, ivgen-hash-alg, hash-alg, iter-time. Marks them consumed.
Result<LuksCreateOptions> parse_luks_create_options(const OptionList& options, std::string_view prefix);

// An unlocked volume: its header and the payload cipher (master key).
struct LuksVolume {
    LuksHeader header;
    SectorCipher cipher;
};

struct LuksCreated {
    LuksVolume volume;
    // The whole LUKS area to write at the area's start: the header, slot 0's
    // encrypted key material, zeroes elsewhere. Its size is the header's
    // payload offset (QEMU sizes it the same way).
    std::vector<uint8_t> area;
};

Result<LuksCreated> luks_create(const LuksCreateOptions& options, std::span<const uint8_t> passphrase);

// `area` starts with the LUKS header and covers at least
// header.key_material_end_bytes() (read LuksHeader::parse first to learn
// how much). Tries every active slot; wrong passphrase gives QEMU's
// "Invalid password, cannot unlock any keyslot".
Result<LuksVolume> luks_unlock(std::span<const uint8_t> area, std::span<const uint8_t> passphrase);

} // namespace kiln::block::crypto
