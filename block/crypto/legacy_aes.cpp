#include "block/crypto/legacy_aes.h"

#include <algorithm>

namespace kiln::block::crypto {

Result<SectorCipher> legacy_qcow_aes_cipher(std::span<const uint8_t> passphrase)
{
    CipherSpec spec;
    spec.alg = CipherAlg::Aes128;
    spec.mode = CipherMode::Cbc;
    spec.ivgen = IvGenAlg::Plain64;
    SecureBytes key(spec.key_bytes());
    std::copy_n(passphrase.begin(), std::min(passphrase.size(), key.size()), key.data());
    return SectorCipher::create(spec, key.span());
}

} // namespace kiln::block::crypto
