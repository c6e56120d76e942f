// The module as the qcow2 driver will use it, checked on images QEMU
// encrypts: legacy AES (crypt_method=1, guest-offset IVs) and LUKS in
// qcow2 (header extension 0x0537be77, host-offset IVs). The test walks the
// qcow2 metadata itself to find the data cluster (skipped without qemu-img).
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "block/crypto/legacy_aes.h"
#include "block/crypto/luks.h"
#include "tests/unit/crypto/crypto_test_util.h"

using namespace kiln;
using namespace kiln::block::crypto;
using namespace kiln::block::crypto::test;

namespace {

class Qcow2CryptoInterop : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (access("/usr/bin/qemu-img", X_OK) != 0 || access("/usr/bin/qemu-io", X_OK) != 0)
            GTEST_SKIP() << "qemu-img/qemu-io not installed";
        char tmpl[] = "/tmp/kiln-crypto-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override
    {
        if (!m_dir.empty())
            std::system(("rm -rf " + m_dir).c_str());
    }

    // Creates an encrypted qcow2 with qemu-img and writes 0x5a to guest [0, 64k).
    // Returns "" when qemu-img could not create it: QEMU's PBKDF2 calibration
    // fails at random on slow hosts ("Unable to get accurate CPU usage").
    std::string make(const std::string& encrypt_opts)
    {
        std::string file = m_dir + "/e.qcow2";
        std::string obj = " --object secret,id=sec0,data=abc ";
        int rc = 1;
        for (int attempt = 0; attempt < 40 && rc != 0; ++attempt)
            rc = std::system(("rm -f " + file + "; qemu-img create -q -f qcow2" + obj + "-o encrypt.key-secret=sec0,"
                + encrypt_opts + " " + file + " 1M >/dev/null 2>&1")
                                 .c_str());
        if (rc != 0)
            return "";
        rc = std::system(("qemu-io" + obj + "--image-opts driver=qcow2,encrypt.key-secret=sec0,file.filename=" + file
            + " -c 'write -P 0x5a 0 64k' >/dev/null")
                             .c_str());
        EXPECT_EQ(rc, 0);
        std::ifstream in(file, std::ios::binary);
        m_image.assign(std::istreambuf_iterator<char>(in), {});
        return file;
    }

    uint64_t be(size_t at, int bytes) const
    {
        uint64_t v = 0;
        for (int i = 0; i < bytes; ++i)
            v = v << 8 | m_image.at(at + size_t(i));
        return v;
    }

    // Host offset of guest cluster 0 through L1[0] and L2[0].
    uint64_t host_offset_of_cluster0() const
    {
        constexpr uint64_t k_offset_mask = 0x00fffffffffffe00ull;
        uint64_t l1 = be(40, 8);
        uint64_t l2 = be(l1, 8) & k_offset_mask;
        return be(l2, 8) & k_offset_mask;
    }

    std::string m_dir;
    std::vector<uint8_t> m_image;
};

} // namespace

TEST_F(Qcow2CryptoInterop, LegacyAesUsesGuestSectorNumbers)
{
    ASSERT_FALSE(make("encrypt.format=aes").empty());
    ASSERT_EQ(be(32, 4), 1u); // crypt_method
    uint64_t host = host_offset_of_cluster0();
    ASSERT_NE(host, 0u);

    auto cipher = legacy_qcow_aes_cipher(bytes_of("abc")).value();
    std::vector<uint8_t> data(m_image.begin() + ptrdiff_t(host), m_image.begin() + ptrdiff_t(host + 65536));
    ASSERT_TRUE(cipher.decrypt(0, data).ok());
    EXPECT_EQ(std::count(data.begin(), data.end(), 0x5a), 65536);
}

TEST_F(Qcow2CryptoInterop, LuksInQcow2UsesHostSectorNumbers)
{
    if (make("encrypt.format=luks,encrypt.iter-time=10").empty())
        GTEST_SKIP() << "qemu-img could not create a LUKS qcow2 (its calibration failed 40 times)";
    ASSERT_EQ(be(32, 4), 2u); // crypt_method
    // Header extensions start at header_length (v3).
    uint64_t area_offset = 0, area_length = 0;
    for (size_t at = be(100, 4); at + 8 <= m_image.size();) {
        uint32_t type = uint32_t(be(at, 4)), len = uint32_t(be(at + 4, 4));
        if (type == 0)
            break;
        if (type == 0x0537be77) {
            area_offset = be(at + 8, 8);
            area_length = be(at + 16, 8);
        }
        at += 8 + (len + 7) / 8 * 8;
    }
    ASSERT_NE(area_offset, 0u);
    ASSERT_LE(area_offset + area_length, m_image.size());
    std::span<const uint8_t> area(m_image.data() + area_offset, area_length);
    auto header = LuksHeader::parse(area);
    ASSERT_TRUE(header.ok()) << header.error().message();
    EXPECT_EQ(area_length, header->payload_offset_bytes());
    auto volume = luks_unlock(area, bytes_of("abc"));
    ASSERT_TRUE(volume.ok()) << volume.error().message();
    EXPECT_FALSE(luks_unlock(area, bytes_of("abd")).ok());

    uint64_t host = host_offset_of_cluster0();
    ASSERT_NE(host, 0u);
    std::vector<uint8_t> data(m_image.begin() + ptrdiff_t(host), m_image.begin() + ptrdiff_t(host + 65536));
    auto with_guest_iv = data;
    ASSERT_TRUE(volume->cipher.decrypt(host / 512, data).ok());
    EXPECT_EQ(std::count(data.begin(), data.end(), 0x5a), 65536);
    ASSERT_TRUE(volume->cipher.decrypt(0, with_guest_iv).ok());
    EXPECT_LT(std::count(with_guest_iv.begin(), with_guest_iv.end(), 0x5a), 1000);
}
