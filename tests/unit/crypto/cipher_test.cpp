// Known-answer tests for SectorCipher: IEEE P1619 XTS vectors, NIST
// SP 800-38A AES vectors through the CBC/ECB modes with plain64 IVs, and
// the IV generators' sector numbering.
#include <gtest/gtest.h>

#include "block/crypto/legacy_aes.h"
#include "block/crypto/sector_cipher.h"
#include "tests/unit/crypto/crypto_test_util.h"

using namespace kiln;
using namespace kiln::block::crypto;
using namespace kiln::block::crypto::test;

static SectorCipher make(CipherAlg alg, CipherMode mode, IvGenAlg ivgen, const std::vector<uint8_t>& key,
    std::optional<HashAlg> ivhash = std::nullopt)
{
    CipherSpec spec { alg, mode, ivgen, ivhash };
    auto c = SectorCipher::create(spec, key);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message());
    return std::move(c).value();
}

// IEEE P1619/D16 vector 2: the data unit sequence number 0x3333333333 is
// the little-endian tweak, exactly what plain64 makes of sector 0x3333333333.
TEST(SectorCipher, XtsAes128MatchesIeeeP1619Vector2)
{
    auto key = from_hex("11111111111111111111111111111111"
                        "22222222222222222222222222222222");
    auto c = make(CipherAlg::Aes128, CipherMode::Xts, IvGenAlg::Plain64, key);
    std::vector<uint8_t> buf(32, 0x44);
    ASSERT_TRUE(c.encrypt(0x3333333333ull, buf).ok());
    EXPECT_EQ(to_hex(buf), "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0");
    ASSERT_TRUE(c.decrypt(0x3333333333ull, buf).ok());
    EXPECT_EQ(buf, std::vector<uint8_t>(32, 0x44));
}

TEST(SectorCipher, XtsAes128MatchesIeeeP1619Vector3)
{
    auto key = from_hex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0"
                        "22222222222222222222222222222222");
    auto c = make(CipherAlg::Aes128, CipherMode::Xts, IvGenAlg::Plain64, key);
    std::vector<uint8_t> buf(32, 0x44);
    ASSERT_TRUE(c.encrypt(0x3333333333ull, buf).ok());
    EXPECT_EQ(to_hex(buf), "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89");
}

// SP 800-38A F.2.1 uses IV 000102..0f; plain64 of sector s gives le64(s)
// then zeroes, so the first plaintext block is pre-XORed with the
// difference of the two IVs, which CBC cancels out.
static void expect_cbc_vector(uint64_t sector)
{
    auto key = from_hex("2b7e151628aed2a6abf7158809cf4f3c");
    auto c = make(CipherAlg::Aes128, CipherMode::Cbc, IvGenAlg::Plain64, key);
    auto nist_iv = from_hex("000102030405060708090a0b0c0d0e0f");
    auto p = from_hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    std::vector<uint8_t> buf = p;
    for (int i = 0; i < 16; ++i)
        buf[i] ^= nist_iv[i] ^ (i < 8 ? uint8_t(sector >> (8 * i)) : 0);
    ASSERT_TRUE(c.encrypt(sector, buf).ok());
    EXPECT_EQ(to_hex(buf), "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2") << sector;
}

TEST(SectorCipher, CbcPlain64MatchesNistVectorsAtSeveralSectors)
{
    expect_cbc_vector(0);
    expect_cbc_vector(1);
    expect_cbc_vector(0x0102030405060708ull);
}

TEST(SectorCipher, EcbMatchesNistVectorAndIgnoresTheSector)
{
    auto key = from_hex("2b7e151628aed2a6abf7158809cf4f3c");
    auto c = make(CipherAlg::Aes128, CipherMode::Ecb, IvGenAlg::Plain64, key);
    auto buf = from_hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    ASSERT_TRUE(c.encrypt(77, buf).ok());
    EXPECT_EQ(to_hex(buf), "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf");
}

TEST(SectorCipher, EachSectorGetsItsOwnIv)
{
    std::vector<uint8_t> key(64, 0x5a);
    key[40] = 1;
    auto c = make(CipherAlg::Aes256, CipherMode::Xts, IvGenAlg::Plain64, key);
    std::vector<uint8_t> two(1024, 0);
    ASSERT_TRUE(c.encrypt(10, two).ok());
    std::vector<uint8_t> single(512, 0);
    ASSERT_TRUE(c.encrypt(11, single).ok());
    // Sector 11 encrypted alone equals the second half of the pair.
    EXPECT_TRUE(std::equal(single.begin(), single.end(), two.begin() + 512));
    EXPECT_FALSE(std::equal(two.begin(), two.begin() + 512, two.begin() + 512));
}

TEST(SectorCipher, PlainTruncatesTheSectorTo32Bits)
{
    std::vector<uint8_t> key(32, 7);
    key[20] = 8; // OpenSSL refuses XTS keys whose halves are equal
    auto plain = make(CipherAlg::Aes128, CipherMode::Xts, IvGenAlg::Plain, key);
    auto plain64 = make(CipherAlg::Aes128, CipherMode::Xts, IvGenAlg::Plain64, key);
    std::vector<uint8_t> a(512, 1), b(512, 1), c(512, 1);
    ASSERT_TRUE(plain.encrypt((1ull << 32) + 5, a).ok());
    ASSERT_TRUE(plain64.encrypt(5, b).ok());
    ASSERT_TRUE(plain64.encrypt((1ull << 32) + 5, c).ok());
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
}

TEST(SectorCipher, EssivRoundTripsAndDiffersFromPlain64)
{
    std::vector<uint8_t> key(32, 3);
    auto essiv = make(CipherAlg::Aes256, CipherMode::Cbc, IvGenAlg::Essiv, key, HashAlg::Sha256);
    auto plain64 = make(CipherAlg::Aes256, CipherMode::Cbc, IvGenAlg::Plain64, key);
    std::vector<uint8_t> data(2048);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = uint8_t(i * 13);
    auto a = data, b = data;
    ASSERT_TRUE(essiv.encrypt(4, a).ok());
    ASSERT_TRUE(plain64.encrypt(4, b).ok());
    EXPECT_NE(a, b);
    ASSERT_TRUE(essiv.decrypt(4, a).ok());
    EXPECT_EQ(a, data);
}

TEST(SectorCipher, XtsAes192UsesTheGenericPathAndRoundTrips)
{
    std::vector<uint8_t> key(48);
    for (size_t i = 0; i < key.size(); ++i)
        key[i] = uint8_t(i);
    auto c = make(CipherAlg::Aes192, CipherMode::Xts, IvGenAlg::Plain64, key);
    std::vector<uint8_t> data(1024, 0x11), buf = data;
    ASSERT_TRUE(c.encrypt(9, buf).ok());
    EXPECT_NE(buf, data);
    ASSERT_TRUE(c.decrypt(9, buf).ok());
    EXPECT_EQ(buf, data);
}

TEST(SectorCipher, GenericXtsAgreesWithOpenSslOnFirstBlockStructure)
{
    // XTS with equal tweak keys: sector s block 0 of AES-192 must equal
    // E_K1(P ^ T) ^ T with T = E_K2(le64(s)), checked through ECB.
    std::vector<uint8_t> key(48);
    for (size_t i = 0; i < key.size(); ++i)
        key[i] = uint8_t(i * 3 + 1);
    auto xts = make(CipherAlg::Aes192, CipherMode::Xts, IvGenAlg::Plain64, key);
    auto k1 = make(CipherAlg::Aes192, CipherMode::Ecb, IvGenAlg::Plain64, { key.begin(), key.begin() + 24 });
    auto k2 = make(CipherAlg::Aes192, CipherMode::Ecb, IvGenAlg::Plain64, { key.begin() + 24, key.end() });
    std::vector<uint8_t> t(16, 0);
    t[0] = 5;
    ASSERT_TRUE(k2.encrypt(0, t).ok());
    std::vector<uint8_t> p(16, 0x99), expect = p;
    for (int i = 0; i < 16; ++i)
        expect[i] ^= t[i];
    ASSERT_TRUE(k1.encrypt(0, expect).ok());
    for (int i = 0; i < 16; ++i)
        expect[i] ^= t[i];
    ASSERT_TRUE(xts.encrypt(5, p).ok());
    EXPECT_EQ(p, expect);
}

TEST(SectorCipher, CtrRoundTrips)
{
    std::vector<uint8_t> key(16, 9);
    auto c = make(CipherAlg::Aes128, CipherMode::Ctr, IvGenAlg::Plain64, key);
    std::vector<uint8_t> data(512, 0xab), buf = data;
    ASSERT_TRUE(c.encrypt(1, buf).ok());
    EXPECT_NE(buf, data);
    ASSERT_TRUE(c.decrypt(1, buf).ok());
    EXPECT_EQ(buf, data);
}

TEST(SectorCipher, RejectsBadKeysAndLengths)
{
    CipherSpec spec;
    auto bad = SectorCipher::create(spec, std::vector<uint8_t>(32));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "Cipher key must be 64 bytes, not 32");
    auto c = make(CipherAlg::Aes256, CipherMode::Xts, IvGenAlg::Plain64, std::vector<uint8_t>(64, 1));
    std::vector<uint8_t> odd(100);
    EXPECT_FALSE(c.encrypt(0, odd).ok());
    CipherSpec essiv { CipherAlg::Aes128, CipherMode::Cbc, IvGenAlg::Essiv, HashAlg::Sha512 };
    EXPECT_FALSE(SectorCipher::create(essiv, std::vector<uint8_t>(16)).ok());
}

TEST(LegacyAes, KeyIsThePassphrasePaddedTo16Bytes)
{
    auto legacy = legacy_qcow_aes_cipher(bytes_of("abc")).value();
    auto key = from_hex("61626300000000000000000000000000");
    auto reference = make(CipherAlg::Aes128, CipherMode::Cbc, IvGenAlg::Plain64, key);
    std::vector<uint8_t> a(1024, 0x5a), b = a;
    ASSERT_TRUE(legacy.encrypt(123, a).ok());
    ASSERT_TRUE(reference.encrypt(123, b).ok());
    EXPECT_EQ(a, b);
    // Longer passphrases are cut at 16 bytes.
    auto long1 = legacy_qcow_aes_cipher(bytes_of("0123456789abcdefXYZ")).value();
    auto long2 = legacy_qcow_aes_cipher(bytes_of("0123456789abcdef")).value();
    std::vector<uint8_t> c(512, 1), d(512, 1);
    ASSERT_TRUE(long1.encrypt(0, c).ok());
    ASSERT_TRUE(long2.encrypt(0, d).ok());
    EXPECT_EQ(c, d);
}
