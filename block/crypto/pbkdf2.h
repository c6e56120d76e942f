// PBKDF2-HMAC (RFC 2898) over OpenSSL, and the calibration that turns
// QEMU's iter-time (milliseconds) into an iteration count.
#pragma once

#include <cstdint>
#include <span>

#include "block/crypto/algorithms.h"
#include "util/result.h"

namespace kiln::block::crypto {

// Upper bound on iterations Kiln accepts from a header: a hostile image
// must not pin a CPU for hours. 2000 ms of SHA-256 on a fast host is
// about 2-4 million; this leaves ample room.
constexpr uint64_t k_max_pbkdf2_iterations = 100'000'000;

Result<void> pbkdf2(HashAlg hash, std::span<const uint8_t> password, std::span<const uint8_t> salt, uint64_t iterations,
    std::span<uint8_t> out);

// Iterations that take about `iter_time_ms` of this thread's CPU time when
// deriving `out_bytes` bytes, at least `minimum`. Measures for a few tens of
// milliseconds (QEMU measures for at least 500 ms).
Result<uint64_t> pbkdf2_iterations_for(HashAlg hash, size_t out_bytes, uint64_t iter_time_ms, uint64_t minimum);

} // namespace kiln::block::crypto
