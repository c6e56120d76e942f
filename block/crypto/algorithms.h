// Names and sizes of the ciphers, modes, IV generators and hashes Kiln's
// disk encryption supports, spelt as QEMU's encrypt.* options and the
// LUKS1 header spell them. Only AES is implemented (OpenSSL's libcrypto).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "util/result.h"

namespace kiln::block::crypto {

enum class CipherAlg { Aes128, Aes192, Aes256 };
enum class CipherMode { Xts, Cbc, Ecb, Ctr };
enum class IvGenAlg { Plain, Plain64, Essiv };
enum class HashAlg { Md5, Sha1, Sha224, Sha256, Sha384, Sha512, Ripemd160 };

// "aes-256", "xts", "plain64", "sha256" (QEMU's QAPI enum names).
const char* cipher_alg_name(CipherAlg alg);
const char* cipher_mode_name(CipherMode mode);
const char* ivgen_alg_name(IvGenAlg alg);
const char* hash_alg_name(HashAlg alg);
std::optional<CipherAlg> parse_cipher_alg(std::string_view name);
std::optional<CipherMode> parse_cipher_mode(std::string_view name);
std::optional<IvGenAlg> parse_ivgen_alg(std::string_view name);
std::optional<HashAlg> parse_hash_alg(std::string_view name);

// Bytes of one AES key (16/24/32).
size_t cipher_key_bytes(CipherAlg alg);
size_t hash_digest_bytes(HashAlg alg);
// nullptr when this OpenSSL build lacks the hash (ripemd160 in OpenSSL 3
// without the legacy provider).
const EVP_MD* hash_evp(HashAlg alg);

// One full cipher description: what encrypts the payload and key slots.
struct CipherSpec {
    CipherAlg alg = CipherAlg::Aes256;
    CipherMode mode = CipherMode::Xts;
    IvGenAlg ivgen = IvGenAlg::Plain64;
    std::optional<HashAlg> ivgen_hash; // essiv only

    // Bytes of the key this spec needs (XTS takes two AES keys).
    size_t key_bytes() const { return cipher_key_bytes(alg) * (mode == CipherMode::Xts ? 2 : 1); }
    // The LUKS header's cipher-mode string: "xts-plain64", "cbc-essiv:sha256".
    std::string luks_mode_string() const;
    // Checks the combination (ESSIV needs a hash whose digest is an AES
    // key size; ECB ignores the IV).
    Result<void> validate() const;
};

// The LUKS header's (cipher-name, cipher-mode, key-bytes) back to a spec.
Result<CipherSpec> parse_luks_cipher(std::string_view cipher_name, std::string_view mode_string, size_t key_bytes);

} // namespace kiln::block::crypto
