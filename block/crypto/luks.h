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
#include "block/crypto/secure_bytes.h"
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

// Building blocks shared with keyslot amendment (luks_amend.h).

// Cryptographically random bytes (OpenSSL RAND_bytes).
Result<void> random_bytes(std::span<uint8_t> out);
// Decrypts key slot `slot`'s material (inside `area`, which must cover it)
// with `passphrase`: the master key if its digest matches, an empty buffer
// if not or if the slot is inactive.
Result<SecureBytes> luks_try_keyslot(
    const LuksHeader& header, size_t slot, std::span<const uint8_t> area, std::span<const uint8_t> passphrase);
// Fills key slot `slot` of `header` (fresh salt, `iterations`, active) for
// `passphrase` and returns the encrypted split key to store at the slot's
// key offset. Only the in-memory header changes.
Result<SecureBytes> luks_store_keyslot(LuksHeader& header, size_t slot, std::span<const uint8_t> master_key,
    std::span<const uint8_t> passphrase, uint64_t iterations);
// PBKDF2 iterations for a key slot that take about `iter_time_ms` here
// (at least QEMU's floor of 1000).
Result<uint64_t> luks_slot_iterations(const LuksHeader& header, uint64_t iter_time_ms);

} // namespace kiln::block::crypto
