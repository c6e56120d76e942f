#include "block/crypto/sector_cipher.h"

#include <cstring>
#include <memory>

#include <openssl/evp.h>

namespace kiln::block::crypto {

namespace {

struct CtxDeleter {
    void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

constexpr size_t k_block_bytes = 16;

const EVP_CIPHER* ecb_cipher(size_t key_bytes)
{
    return key_bytes == 16 ? EVP_aes_128_ecb() : key_bytes == 24 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
}

// nullptr: no OpenSSL cipher for the combination (XTS-AES-192).
const EVP_CIPHER* evp_cipher(CipherAlg alg, CipherMode mode)
{
    switch (mode) {
    case CipherMode::Xts:
        return alg == CipherAlg::Aes128 ? EVP_aes_128_xts() : alg == CipherAlg::Aes256 ? EVP_aes_256_xts() : nullptr;
    case CipherMode::Cbc:
        return alg == CipherAlg::Aes128 ? EVP_aes_128_cbc()
            : alg == CipherAlg::Aes192  ? EVP_aes_192_cbc()
                                        : EVP_aes_256_cbc();
    case CipherMode::Ecb:
        return ecb_cipher(cipher_key_bytes(alg));
    case CipherMode::Ctr:
        return alg == CipherAlg::Aes128 ? EVP_aes_128_ctr()
            : alg == CipherAlg::Aes192  ? EVP_aes_192_ctr()
                                        : EVP_aes_256_ctr();
    }
    return nullptr;
}

Result<CipherCtx> new_ctx(const EVP_CIPHER* cipher, const uint8_t* key, int enc)
{
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex(ctx.get(), cipher, nullptr, key, nullptr, enc) != 1)
        return Error::internal("Cannot initialise cipher context");
    EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
    return ctx;
}

Error cipher_failed() { return Error::internal("Cipher operation failed"); }

// The ESSIV cipher (AES-ECB keyed by the hash of the key), or null.
Result<CipherCtx> essiv_ctx(const CipherSpec& spec, const SecureBytes& essiv_key)
{
    if (spec.ivgen != IvGenAlg::Essiv)
        return CipherCtx();
    return new_ctx(ecb_cipher(essiv_key.size()), essiv_key.data(), 1);
}

} // namespace

Result<SectorCipher> SectorCipher::create(const CipherSpec& spec, std::span<const uint8_t> key)
{
    TRY(spec.validate());
    if (key.size() != spec.key_bytes())
        return Error::invalid(
            "Cipher key must be " + std::to_string(spec.key_bytes()) + " bytes, not " + std::to_string(key.size()));
    SectorCipher cipher;
    cipher.m_spec = spec;
    cipher.m_key = SecureBytes(key);
    if (spec.ivgen == IvGenAlg::Essiv) {
        cipher.m_essiv_key = SecureBytes(hash_digest_bytes(*spec.ivgen_hash));
        unsigned int out_len = 0;
        if (EVP_Digest(key.data(), key.size(), cipher.m_essiv_key.data(), &out_len, hash_evp(*spec.ivgen_hash), nullptr)
            != 1)
            return Error::internal("Cannot hash the key for the essiv IV generator");
    }
    return cipher;
}

Result<void> SectorCipher::make_iv(uint64_t sector, EVP_CIPHER_CTX* essiv, uint8_t iv[16]) const
{
    std::memset(iv, 0, k_block_bytes);
    // plain truncates the sector number to 32 bits, as dm-crypt's does.
    uint64_t value = m_spec.ivgen == IvGenAlg::Plain ? (sector & 0xffffffffu) : sector;
    for (int i = 0; i < 8; ++i)
        iv[i] = uint8_t(value >> (8 * i));
    int out_len = 0;
    if (essiv && EVP_CipherUpdate(essiv, iv, &out_len, iv, int(k_block_bytes)) != 1)
        return cipher_failed();
    return ok();
}

Result<void> SectorCipher::encrypt(uint64_t start_sector, std::span<uint8_t> buf) const
{
    return process(start_sector, buf, Direction::Encrypt);
}

Result<void> SectorCipher::decrypt(uint64_t start_sector, std::span<uint8_t> buf) const
{
    return process(start_sector, buf, Direction::Decrypt);
}

Result<void> SectorCipher::process(uint64_t start_sector, std::span<uint8_t> buf, Direction dir) const
{
    if (buf.size() % k_block_bytes)
        return Error::invalid(
            "Encrypted data length " + std::to_string(buf.size()) + " is not a multiple of the cipher block size");
    const EVP_CIPHER* cipher = evp_cipher(m_spec.alg, m_spec.mode);
    if (!cipher)
        return process_xts_generic(start_sector, buf, dir);
    CipherCtx ctx = TRY(new_ctx(cipher, m_key.data(), int(dir)));
    CipherCtx essiv = TRY(essiv_ctx(m_spec, m_essiv_key));
    uint64_t sector = start_sector;
    for (size_t pos = 0; pos < buf.size(); pos += k_sector_bytes, ++sector) {
        size_t len = std::min(k_sector_bytes, buf.size() - pos);
        uint8_t iv[k_block_bytes];
        TRY(make_iv(sector, essiv.get(), iv));
        int out_len = 0;
        if (EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, nullptr, iv, -1) != 1
            || EVP_CipherUpdate(ctx.get(), buf.data() + pos, &out_len, buf.data() + pos, int(len)) != 1)
            return cipher_failed();
    }
    return ok();
}

// XTS (IEEE P1619) over AES-ECB for key sizes OpenSSL's XTS lacks
// (AES-192): whole 16-byte blocks only, so no ciphertext stealing.
Result<void> SectorCipher::process_xts_generic(uint64_t start_sector, std::span<uint8_t> buf, Direction dir) const
{
    size_t half = m_key.size() / 2;
    const EVP_CIPHER* ecb = ecb_cipher(half);
    CipherCtx data_ctx = TRY(new_ctx(ecb, m_key.data(), int(dir)));
    CipherCtx tweak_ctx = TRY(new_ctx(ecb, m_key.data() + half, 1));
    CipherCtx essiv = TRY(essiv_ctx(m_spec, m_essiv_key));
    uint64_t sector = start_sector;
    for (size_t pos = 0; pos < buf.size(); pos += k_sector_bytes, ++sector) {
        size_t len = std::min(k_sector_bytes, buf.size() - pos);
        uint8_t tweak[k_block_bytes];
        TRY(make_iv(sector, essiv.get(), tweak));
        int out_len = 0;
        if (EVP_CipherUpdate(tweak_ctx.get(), tweak, &out_len, tweak, int(k_block_bytes)) != 1)
            return cipher_failed();
        for (size_t b = 0; b < len; b += k_block_bytes) {
            uint8_t* block = buf.data() + pos + b;
            for (size_t i = 0; i < k_block_bytes; ++i)
                block[i] ^= tweak[i];
            if (EVP_CipherUpdate(data_ctx.get(), block, &out_len, block, int(k_block_bytes)) != 1)
                return cipher_failed();
            for (size_t i = 0; i < k_block_bytes; ++i)
                block[i] ^= tweak[i];
            // tweak *= x in GF(2^128), little-endian byte order.
            uint8_t carry = 0;
            for (size_t i = 0; i < k_block_bytes; ++i) {
                uint8_t next = tweak[i] >> 7;
                tweak[i] = uint8_t((tweak[i] << 1) | carry);
                carry = next;
            }
            if (carry)
                tweak[0] ^= 0x87;
        }
    }
    return ok();
}

} // namespace kiln::block::crypto
