// LUKS key slot management: qemu-img amend's state/new-secret/old-secret/
// keyslot/iter-time options (QEMU's QCryptoBlockAmendOptionsLUKS), with
// QEMU 7.2's rules and messages. Used by the `luks` format (no prefix) and
// qcow2 (prefix "encrypt.").
//
// No I/O here: luks_amend() works on the LUKS area the caller read and
// returns the writes to make, in order, each to be followed by a flush.
// That order is what makes a crash harmless: a new slot's key material is
// on disk before the header marks the slot active; an erased slot is marked
// inactive before its material is overwritten with random bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "block/crypto/luks_header.h"
#include "block/crypto/secure_bytes.h"
#include "util/options.h"

namespace kiln::block::crypto {

enum class LuksKeyslotState { Active, Inactive };

struct LuksAmendOptions {
    LuksKeyslotState state = LuksKeyslotState::Active;
    // Secret ids (--object secret,id=...), never the passphrases.
    std::optional<std::string> new_secret;
    std::optional<std::string> old_secret;
    std::optional<int64_t> keyslot;
    std::optional<uint64_t> iter_time_ms;
};

// The amend option names, without prefix.
inline constexpr const char* k_luks_amend_keys[] = { "state", "new-secret", "old-secret", "keyslot", "iter-time" };

// True if any amend option is present under `prefix`.
bool has_luks_amend_options(const OptionList& options, std::string_view prefix);
// Reads the amend options under `prefix` ("" or "encrypt.") and marks them
// consumed. `state` is required ("Parameter 'state' is missing", without
// the prefix, as qemu-img says it).
Result<LuksAmendOptions> parse_luks_amend_options(const OptionList& options, std::string_view prefix);

enum class LuksAmendForce { No, Yes };

// Looks a secret up by id (BlockContext::secret), returning its bytes.
using LuksSecretLookup = std::function<Result<SecureBytes>(const std::string& id)>;

// One write into the LUKS area; the caller flushes after each.
struct LuksAreaWrite {
    uint64_t offset_bytes = 0; // from the start of the LUKS area
    SecureBytes bytes;
};

struct LuksAmendPlan {
    LuksHeader header; // the header once every write is done
    std::vector<LuksAreaWrite> writes;
};

// Plans the amendment of `header` whose area bytes (header and every
// slot's key material) are `area`. Adding a key unlocks the master key
// with the secret `unlock_secret_id` (the image's key-secret), as QEMU
// does. Secrets are looked up through `lookup` in QEMU's order, so a
// missing one is reported where QEMU reports it. PBKDF2 runs here: call it
// off the event loop.
Result<LuksAmendPlan> luks_amend(const LuksHeader& header, std::span<const uint8_t> area,
    const LuksAmendOptions& options, const std::string& unlock_secret_id, const LuksSecretLookup& lookup,
    LuksAmendForce force);

} // namespace kiln::block::crypto
