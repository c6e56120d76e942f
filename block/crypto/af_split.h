// The LUKS anti-forensic splitter (LUKS1 spec, section 2.4): a key is
// spread over `stripes` times its size so that destroying any part of the
// stored material destroys the key.
#pragma once

#include <cstdint>
#include <span>

#include "block/crypto/algorithms.h"
#include "util/result.h"

namespace kiln::block::crypto {

// out.size() == key.size() * stripes. Random stripes come from RAND_bytes.
Result<void> af_split(HashAlg hash, std::span<const uint8_t> key, uint32_t stripes, std::span<uint8_t> out);
// Inverse of af_split: key.size() * stripes == split.size().
Result<void> af_merge(HashAlg hash, std::span<const uint8_t> split, uint32_t stripes, std::span<uint8_t> key);

} // namespace kiln::block::crypto
