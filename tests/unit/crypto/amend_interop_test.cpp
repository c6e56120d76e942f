// Key slot amendment interop with Debian's qemu-img/qemu-io (skipped when
// they are absent), for the `luks` format and qcow2 with encrypt.format=luks:
// keys Kiln adds open in qemu-io, keys qemu-img adds open in Kiln, and keys
// either removes open in neither.
#include <unistd.h>

#include <cstdio>

#include "tests/unit/block/block_fixture.h"
#include "tests/unit/crypto/crypto_test_util.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;
using namespace kiln::block::crypto::test;

namespace {

constexpr const char* k_objects
    = " --object secret,id=sec0,data=zero-pass --object secret,id=sec1,data=one-pass ";

struct Format {
    const char* name;
    const char* prefix; // "" for luks, "encrypt." for qcow2
};

class AmendInterop : public BlockFixture, public ::testing::WithParamInterface<Format> {
protected:
    void SetUp() override
    {
        if (access("/usr/bin/qemu-img", X_OK) != 0 || access("/usr/bin/qemu-io", X_OK) != 0)
            GTEST_SKIP() << "qemu-img/qemu-io not installed";
        BlockFixture::SetUp();
        m_ctx->add_secret("sec0", "zero-pass");
        m_ctx->add_secret("sec1", "one-pass");
        m_file = path(std::string("img.") + GetParam().name);
    }

    std::string p(const char* key) const { return std::string(GetParam().prefix) + key; }

    std::string image_opts(const char* secret) const
    {
        return std::string(" --image-opts driver=") + GetParam().name + ",file.filename=" + m_file + ","
            + p("key-secret=") + secret;
    }

    // qemu-io reads the pattern back with `secret`; "" or qemu-io's error.
    std::string qemu_reads(const char* secret)
    {
        auto r = sh(std::string("qemu-io") + k_objects + image_opts(secret) + " -c 'read -P 0x5c 0 64k'");
        if (r.status == 0 && r.output.find("Pattern verification failed") == std::string::npos)
            return "";
        return r.output;
    }

    Result<std::unique_ptr<BlockNode>> kiln_open(const char* secret, bool rw)
    {
        ImageSpec spec { m_file, GetParam().name, OptionList::parse(p("key-secret=") + secret).value(), {} };
        spec.flags.read_write = rw;
        return run(m_ctx->open_image(spec));
    }

    // Kiln reads the pattern back with `secret`; "" or the open error.
    std::string kiln_reads(const char* secret)
    {
        auto node = kiln_open(secret, false);
        if (!node)
            return node.error().message();
        std::vector<uint8_t> buf(65536);
        EXPECT_TRUE(run((*node)->preadv(0, QIov(buf.data(), buf.size()))).ok());
        EXPECT_EQ(std::count(buf.begin(), buf.end(), 0x5c), 65536);
        EXPECT_TRUE(run((*node)->close()).ok());
        return "";
    }

    std::string kiln_amend(const char* secret, const std::string& options, bool force = false)
    {
        auto node = kiln_open(secret, true);
        if (!node)
            return node.error().message();
        AmendFlags flags;
        flags.force = force;
        auto r = run((*node)->amend(OptionList::parse(options).value(), flags));
        EXPECT_TRUE(run((*node)->close()).ok());
        return r ? "" : r.error().message();
    }

    void expect_qemu_check_clean()
    {
        if (std::string(GetParam().name) != "qcow2")
            return;
        auto r = sh(std::string("qemu-img check") + k_objects + image_opts("sec1"));
        EXPECT_EQ(r.status, 0) << r.output;
    }

    std::string m_file;
};

} // namespace

TEST_P(AmendInterop, KeysKilnAddsOpenInQemuAndRemovedOnesDoNot)
{
    auto created = sh_calibrating(std::string("qemu-img create -q -f ") + GetParam().name + k_objects + "-o "
        + (GetParam().prefix[0] ? "encrypt.format=luks," : "") + p("key-secret=sec0,") + p("iter-time=10 ") + m_file
        + " 1M");
    if (created.status != 0 && created.output.find(k_qemu_calibration_failed) != std::string::npos)
        GTEST_SKIP() << "qemu-img's PBKDF2 calibration never succeeded";
    ASSERT_EQ(created.status, 0) << created.output;
    auto wrote = sh(std::string("qemu-io") + k_objects + image_opts("sec0") + " -c 'write -P 0x5c 0 64k'");
    ASSERT_EQ(wrote.status, 0) << wrote.output;

    ASSERT_EQ(kiln_amend("sec0", p("state=active,") + p("new-secret=sec1,") + p("keyslot=3,") + p("iter-time=10")), "");
    EXPECT_EQ(qemu_reads("sec1"), "");
    EXPECT_EQ(qemu_reads("sec0"), "");
    auto info = sh("qemu-img info --output=json" + std::string(k_objects) + image_opts("sec1"));
    EXPECT_NE(info.output.find("\"active\": true"), std::string::npos) << info.output;

    ASSERT_EQ(kiln_amend("sec1", p("state=inactive,") + p("old-secret=sec0")), "");
    EXPECT_NE(qemu_reads("sec0").find("Invalid password, cannot unlock any keyslot"), std::string::npos);
    EXPECT_EQ(qemu_reads("sec1"), "");
    EXPECT_EQ(kiln_reads("sec1"), "");
    expect_qemu_check_clean();
}

TEST_P(AmendInterop, KeysQemuAddsOpenInKilnAndRemovedOnesDoNot)
{
    std::string create_opts = std::string(GetParam().prefix[0] ? "encrypt.format=luks," : "") + p("key-secret=sec0,")
        + p("iter-time=10");
    auto made = run(m_ctx->create_image(GetParam().name, m_file, 1 << 20, OptionList::parse(create_opts).value()));
    ASSERT_TRUE(made.ok()) << made.error().message();
    {
        auto node = kiln_open("sec0", true);
        ASSERT_TRUE(node.ok()) << node.error().message();
        std::vector<uint8_t> buf(65536, 0x5c);
        ASSERT_TRUE(run((*node)->pwritev(0, QIov(buf.data(), buf.size()), RequestFlags::None)).ok());
        ASSERT_TRUE(run((*node)->close()).ok());
    }
    auto added = sh_calibrating(std::string("qemu-img amend") + k_objects + image_opts("sec0") + " -o "
        + p("state=active,") + p("new-secret=sec1,") + p("iter-time=10"));
    if (added.status != 0 && added.output.find(k_qemu_calibration_failed) != std::string::npos)
        GTEST_SKIP() << "qemu-img's PBKDF2 calibration never succeeded";
    ASSERT_EQ(added.status, 0) << added.output;
    EXPECT_EQ(kiln_reads("sec1"), "");

    auto erased = sh(std::string("qemu-img amend") + k_objects + image_opts("sec1") + " -o " + p("state=inactive,")
        + p("keyslot=0"));
    ASSERT_EQ(erased.status, 0) << erased.output;
    EXPECT_EQ(kiln_reads("sec0"), "Invalid password, cannot unlock any keyslot");
    EXPECT_EQ(kiln_reads("sec1"), "");
    // Kiln refuses to erase the last key without --force, as qemu-img does.
    EXPECT_EQ(kiln_amend("sec1", p("state=inactive,") + p("keyslot=1")),
        "Attempt to erase the only active keyslot 1 which will erase all the data in the image irreversibly - "
        "refusing operation");
    EXPECT_EQ(kiln_reads("sec1"), "");
    expect_qemu_check_clean();
}

INSTANTIATE_TEST_SUITE_P(Formats, AmendInterop,
    ::testing::Values(Format { "luks", "" }, Format { "qcow2", "encrypt." }),
    [](const auto& info) { return std::string(info.param.name); });
