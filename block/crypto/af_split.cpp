#include "block/crypto/af_split.h"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "block/crypto/secure_bytes.h"

namespace kiln::block::crypto {

namespace {

// The diffusion function H: each digest-sized chunk i of `block` becomes
// hash(be32(i) || chunk), the last chunk truncated to what remains.
Result<void> diffuse(HashAlg hash, std::span<uint8_t> block)
{
    const EVP_MD* md = hash_evp(hash);
    if (!md)
        return Error::not_supported(std::string("Hash algorithm '") + hash_alg_name(hash) + "' is not supported");
    size_t digest_bytes = hash_digest_bytes(hash);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (!ctx)
        return Error::internal("Cannot allocate a hash context");
    uint8_t digest[EVP_MAX_MD_SIZE];
    bool failed = false;
    for (size_t pos = 0, i = 0; pos < block.size() && !failed; pos += digest_bytes, ++i) {
        size_t len = std::min(digest_bytes, block.size() - pos);
        uint8_t be_index[4] = { uint8_t(i >> 24), uint8_t(i >> 16), uint8_t(i >> 8), uint8_t(i) };
        failed = EVP_DigestInit_ex(ctx, md, nullptr) != 1 || EVP_DigestUpdate(ctx, be_index, 4) != 1
            || EVP_DigestUpdate(ctx, block.data() + pos, len) != 1 || EVP_DigestFinal_ex(ctx, digest, nullptr) != 1;
        if (!failed)
            std::copy(digest, digest + len, block.data() + pos);
    }
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(digest, sizeof digest);
    if (failed)
        return Error::internal("Hash operation failed");
    return ok();
}

Result<void> check_sizes(size_t key_bytes, uint32_t stripes, size_t split_bytes)
{
    if (stripes == 0 || key_bytes == 0 || split_bytes / stripes != key_bytes || split_bytes % stripes)
        return Error::invalid("Anti-forensic split size mismatch");
    return ok();
}

} // namespace

Result<void> af_split(HashAlg hash, std::span<const uint8_t> key, uint32_t stripes, std::span<uint8_t> out)
{
    TRY(check_sizes(key.size(), stripes, out.size()));
    size_t n = key.size();
    SecureBytes d(n);
    if (RAND_bytes(out.data(), int(n * (stripes - 1))) != 1)
        return Error::internal("Cannot generate random data");
    for (uint32_t k = 0; k + 1 < stripes; ++k) {
        for (size_t i = 0; i < n; ++i)
            d[i] ^= out[k * n + i];
        TRY(diffuse(hash, d.span()));
    }
    for (size_t i = 0; i < n; ++i)
        out[(stripes - 1) * n + i] = d[i] ^ key[i];
    return ok();
}

Result<void> af_merge(HashAlg hash, std::span<const uint8_t> split, uint32_t stripes, std::span<uint8_t> key)
{
    TRY(check_sizes(key.size(), stripes, split.size()));
    size_t n = key.size();
    SecureBytes d(n);
    for (uint32_t k = 0; k + 1 < stripes; ++k) {
        for (size_t i = 0; i < n; ++i)
            d[i] ^= split[k * n + i];
        TRY(diffuse(hash, d.span()));
    }
    for (size_t i = 0; i < n; ++i)
        key[i] = d[i] ^ split[(stripes - 1) * n + i];
    return ok();
}

} // namespace kiln::block::crypto
