// The anti-forensic splitter: merge inverts split for every supported
// hash and key size; damage to any stripe changes the merged key.
#include <gtest/gtest.h>

#include "block/crypto/af_split.h"

using namespace kiln;
using namespace kiln::block::crypto;

TEST(AfSplit, RoundTripsForEachHashAndKeySize)
{
    for (HashAlg hash : { HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512 }) {
        for (size_t key_bytes : { 16u, 32u, 48u, 64u }) {
            std::vector<uint8_t> key(key_bytes);
            for (size_t i = 0; i < key_bytes; ++i)
                key[i] = uint8_t(i * 7 + 1);
            std::vector<uint8_t> split(key_bytes * 4000);
            ASSERT_TRUE(af_split(hash, key, 4000, split).ok());
            std::vector<uint8_t> merged(key_bytes);
            ASSERT_TRUE(af_merge(hash, split, 4000, merged).ok());
            EXPECT_EQ(merged, key) << hash_alg_name(hash) << " " << key_bytes;
            split[key_bytes * 17] ^= 1;
            ASSERT_TRUE(af_merge(hash, split, 4000, merged).ok());
            EXPECT_NE(merged, key);
        }
    }
}

TEST(AfSplit, TwoSplitsOfOneKeyDiffer)
{
    std::vector<uint8_t> key(32, 1), a(32 * 10), b(32 * 10);
    ASSERT_TRUE(af_split(HashAlg::Sha256, key, 10, a).ok());
    ASSERT_TRUE(af_split(HashAlg::Sha256, key, 10, b).ok());
    EXPECT_NE(a, b);
}

TEST(AfSplit, OneStripeIsTheKeyItself)
{
    std::vector<uint8_t> key(32, 9), out(32);
    ASSERT_TRUE(af_split(HashAlg::Sha256, key, 1, out).ok());
    EXPECT_EQ(out, key);
}

TEST(AfSplit, RejectsSizeMismatch)
{
    std::vector<uint8_t> key(32), out(100);
    EXPECT_FALSE(af_split(HashAlg::Sha256, key, 4000, out).ok());
    EXPECT_FALSE(af_merge(HashAlg::Sha256, out, 0, key).ok());
}
