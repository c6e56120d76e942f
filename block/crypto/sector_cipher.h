// SectorCipher: encrypts and decrypts buffers as consecutive 512-byte
// sectors, each with its own IV (plain, plain64 or essiv of the sector
// number), the way LUKS1 and QEMU's qcow2 encryption do.
//
// Thread-safe: encrypt()/decrypt() are const and build their OpenSSL
// contexts per call, so one SectorCipher may serve many thread-pool
// workers at once.
#pragma once

#include <cstdint>
#include <span>

#include "block/crypto/algorithms.h"
#include "block/crypto/secure_bytes.h"
#include "util/result.h"

namespace kiln::block::crypto {

class SectorCipher {
public:
    static constexpr size_t k_sector_bytes = 512;

    // `key` has spec.key_bytes() bytes; it is copied into wiped storage.
    static Result<SectorCipher> create(const CipherSpec& spec, std::span<const uint8_t> key);

    // Transforms `buf` in place as sectors start_sector, start_sector+1...
    // A shorter last sector is allowed if it is a multiple of 16 bytes
    // (LUKS key material is not always whole sectors).
    Result<void> encrypt(uint64_t start_sector, std::span<uint8_t> buf) const;
    Result<void> decrypt(uint64_t start_sector, std::span<uint8_t> buf) const;

    const CipherSpec& spec() const { return m_spec; }

private:
    enum class Direction { Decrypt = 0, Encrypt = 1 };
    Result<void> process(uint64_t start_sector, std::span<uint8_t> buf, Direction dir) const;
    Result<void> process_xts_generic(uint64_t start_sector, std::span<uint8_t> buf, Direction dir) const;
    // The IV of `sector` (through the essiv cipher when there is one).
    Result<void> make_iv(uint64_t sector, EVP_CIPHER_CTX* essiv, uint8_t iv[16]) const;

    CipherSpec m_spec;
    SecureBytes m_key;
    SecureBytes m_essiv_key; // hash of m_key, essiv only
};

} // namespace kiln::block::crypto
