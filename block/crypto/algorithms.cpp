#include "block/crypto/algorithms.h"

#include <array>
#include <utility>

namespace kiln::block::crypto {

namespace {

template<typename E, size_t N>
std::optional<E> find_name(const std::array<std::pair<E, const char*>, N>& table, std::string_view name)
{
    for (auto& [value, text] : table)
        if (name == text)
            return value;
    return std::nullopt;
}

template<typename E, size_t N> const char* name_of(const std::array<std::pair<E, const char*>, N>& table, E value)
{
    for (auto& [v, text] : table)
        if (v == value)
            return text;
    return "?";
}

constexpr std::array<std::pair<CipherAlg, const char*>, 3> k_cipher_algs { { { CipherAlg::Aes128, "aes-128" },
    { CipherAlg::Aes192, "aes-192" }, { CipherAlg::Aes256, "aes-256" } } };
constexpr std::array<std::pair<CipherMode, const char*>, 4> k_cipher_modes { { { CipherMode::Xts, "xts" },
    { CipherMode::Cbc, "cbc" }, { CipherMode::Ecb, "ecb" }, { CipherMode::Ctr, "ctr" } } };
constexpr std::array<std::pair<IvGenAlg, const char*>, 3> k_ivgens { { { IvGenAlg::Plain, "plain" },
    { IvGenAlg::Plain64, "plain64" }, { IvGenAlg::Essiv, "essiv" } } };
constexpr std::array<std::pair<HashAlg, const char*>, 7> k_hashes { { { HashAlg::Md5, "md5" },
    { HashAlg::Sha1, "sha1" }, { HashAlg::Sha224, "sha224" }, { HashAlg::Sha256, "sha256" },
    { HashAlg::Sha384, "sha384" }, { HashAlg::Sha512, "sha512" }, { HashAlg::Ripemd160, "ripemd160" } } };

} // namespace

const char* cipher_alg_name(CipherAlg alg) { return name_of(k_cipher_algs, alg); }
const char* cipher_mode_name(CipherMode mode) { return name_of(k_cipher_modes, mode); }
const char* ivgen_alg_name(IvGenAlg alg) { return name_of(k_ivgens, alg); }
const char* hash_alg_name(HashAlg alg) { return name_of(k_hashes, alg); }
std::optional<CipherAlg> parse_cipher_alg(std::string_view name) { return find_name(k_cipher_algs, name); }
std::optional<CipherMode> parse_cipher_mode(std::string_view name) { return find_name(k_cipher_modes, name); }
std::optional<IvGenAlg> parse_ivgen_alg(std::string_view name) { return find_name(k_ivgens, name); }
std::optional<HashAlg> parse_hash_alg(std::string_view name) { return find_name(k_hashes, name); }

size_t cipher_key_bytes(CipherAlg alg)
{
    switch (alg) {
    case CipherAlg::Aes128:
        return 16;
    case CipherAlg::Aes192:
        return 24;
    case CipherAlg::Aes256:
        return 32;
    }
    return 32;
}

size_t hash_digest_bytes(HashAlg alg)
{
    switch (alg) {
    case HashAlg::Md5:
        return 16;
    case HashAlg::Sha1:
        return 20;
    case HashAlg::Sha224:
        return 28;
    case HashAlg::Sha256:
        return 32;
    case HashAlg::Sha384:
        return 48;
    case HashAlg::Sha512:
        return 64;
    case HashAlg::Ripemd160:
        return 20;
    }
    return 32;
}

const EVP_MD* hash_evp(HashAlg alg)
{
    switch (alg) {
    case HashAlg::Md5:
        return EVP_md5();
    case HashAlg::Sha1:
        return EVP_sha1();
    case HashAlg::Sha224:
        return EVP_sha224();
    case HashAlg::Sha256:
        return EVP_sha256();
    case HashAlg::Sha384:
        return EVP_sha384();
    case HashAlg::Sha512:
        return EVP_sha512();
    case HashAlg::Ripemd160:
        return EVP_get_digestbyname("ripemd160");
    }
    return nullptr;
}

std::string CipherSpec::luks_mode_string() const
{
    std::string text = std::string(cipher_mode_name(mode)) + "-" + ivgen_alg_name(ivgen);
    if (ivgen == IvGenAlg::Essiv && ivgen_hash)
        text += std::string(":") + hash_alg_name(*ivgen_hash);
    return text;
}

Result<void> CipherSpec::validate() const
{
    if (ivgen == IvGenAlg::Essiv) {
        if (!ivgen_hash)
            return Error::invalid("Missing IV generator hash algorithm for essiv");
        size_t digest = hash_digest_bytes(*ivgen_hash);
        if (digest != 16 && digest != 24 && digest != 32)
            return Error::invalid(std::string("Hash algorithm '") + hash_alg_name(*ivgen_hash)
                + "' is not usable with the 'essiv' IV generator and cipher 'aes'");
        if (!hash_evp(*ivgen_hash))
            return Error::not_supported(
                std::string("Hash algorithm '") + hash_alg_name(*ivgen_hash) + "' is not supported");
    }
    return ok();
}

Result<CipherSpec> parse_luks_cipher(std::string_view cipher_name, std::string_view mode_string, size_t key_bytes)
{
    CipherSpec spec;
    auto dash = mode_string.find('-');
    if (dash == std::string_view::npos)
        return Error::invalid("Unexpected cipher mode string format '" + std::string(mode_string) + "'");
    std::string_view mode_name = mode_string.substr(0, dash);
    std::string_view ivgen_name = mode_string.substr(dash + 1);
    auto mode = parse_cipher_mode(mode_name);
    if (!mode)
        return Error::not_supported("Cipher mode '" + std::string(mode_name) + "' is not supported");
    spec.mode = *mode;
    std::string_view ivhash_name;
    if (auto colon = ivgen_name.find(':'); colon != std::string_view::npos) {
        ivhash_name = ivgen_name.substr(colon + 1);
        ivgen_name = ivgen_name.substr(0, colon);
    }
    auto ivgen = parse_ivgen_alg(ivgen_name);
    if (!ivgen)
        return Error::not_supported("IV generator '" + std::string(ivgen_name) + "' is not supported");
    spec.ivgen = *ivgen;
    if (!ivhash_name.empty()) {
        auto hash = parse_hash_alg(ivhash_name);
        if (!hash)
            return Error::not_supported("Hash algorithm '" + std::string(ivhash_name) + "' is not supported");
        spec.ivgen_hash = *hash;
    }
    size_t one_key = spec.mode == CipherMode::Xts ? key_bytes / 2 : key_bytes;
    if (cipher_name != "aes" || (spec.mode == CipherMode::Xts && key_bytes % 2)
        || (one_key != 16 && one_key != 24 && one_key != 32))
        return Error::not_supported("Algorithm '" + std::string(cipher_name) + "' with key size "
            + std::to_string(key_bytes) + " bytes not supported");
    spec.alg = one_key == 16 ? CipherAlg::Aes128 : one_key == 24 ? CipherAlg::Aes192 : CipherAlg::Aes256;
    TRY(spec.validate());
    return spec;
}

} // namespace kiln::block::crypto
