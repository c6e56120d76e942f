// PBKDF2 known answers (RFC 6070 for HMAC-SHA1, the widely published
// HMAC-SHA256 vectors), iteration bounds and calibration.
#include <gtest/gtest.h>

#include "block/crypto/pbkdf2.h"
#include "tests/unit/crypto/crypto_test_util.h"

using namespace kiln;
using namespace kiln::block::crypto;
using namespace kiln::block::crypto::test;

static std::string derive(
    HashAlg hash, std::string_view password, std::string_view salt, uint64_t iterations, size_t bytes)
{
    std::vector<uint8_t> out(bytes);
    auto r = pbkdf2(hash, bytes_of(password), bytes_of(salt), iterations, out);
    EXPECT_TRUE(r.ok());
    return to_hex(out);
}

TEST(Pbkdf2, Rfc6070Sha1)
{
    EXPECT_EQ(derive(HashAlg::Sha1, "password", "salt", 1, 20), "0c60c80f961f0e71f3a9b524af6012062fe037a6");
    EXPECT_EQ(derive(HashAlg::Sha1, "password", "salt", 2, 20), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
    EXPECT_EQ(derive(HashAlg::Sha1, "password", "salt", 4096, 20), "4b007901b765489abead49d926f721d065a429c1");
    EXPECT_EQ(derive(HashAlg::Sha1, "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25),
        "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038");
    using namespace std::string_view_literals;
    EXPECT_EQ(derive(HashAlg::Sha1, "pass\0word"sv, "sa\0lt"sv, 4096, 16), "56fa6aa75548099dcc37d7f03425e0c3");
}

TEST(Pbkdf2, Sha256)
{
    EXPECT_EQ(derive(HashAlg::Sha256, "password", "salt", 1, 32),
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    EXPECT_EQ(derive(HashAlg::Sha256, "password", "salt", 2, 32),
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
}

TEST(Pbkdf2, RefusesAbsurdIterationCounts)
{
    std::vector<uint8_t> out(20);
    auto zero = pbkdf2(HashAlg::Sha1, bytes_of("p"), bytes_of("s"), 0, out);
    ASSERT_FALSE(zero.ok());
    auto huge = pbkdf2(HashAlg::Sha1, bytes_of("p"), bytes_of("s"), 0xffffffffu, out);
    ASSERT_FALSE(huge.ok());
    EXPECT_NE(huge.error().message().find("out of range"), std::string::npos);
}

TEST(Pbkdf2, EmptyPasswordWorks)
{
    std::vector<uint8_t> out(20);
    EXPECT_TRUE(pbkdf2(HashAlg::Sha256, {}, bytes_of("salt"), 1, out).ok());
}

TEST(Pbkdf2, CalibrationHonoursTheMinimumAndScales)
{
    auto small = pbkdf2_iterations_for(HashAlg::Sha256, 32, 1, 1000);
    ASSERT_TRUE(small.ok());
    EXPECT_GE(*small, 1000u);
    auto large = pbkdf2_iterations_for(HashAlg::Sha256, 32, 100000, 1);
    ASSERT_TRUE(large.ok());
    EXPECT_LE(*large, k_max_pbkdf2_iterations);
    EXPECT_GT(*large, 1000u);
}
