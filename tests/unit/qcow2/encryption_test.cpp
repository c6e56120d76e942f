// Encrypted qcow2 (LUKS and legacy AES) against qemu-img/qemu-io: images
// either program encrypts open in the other with the same secret, wrong
// or missing secrets fail clearly, hostile crypto headers are refused, and
// no message carries the passphrase.
#include <filesystem>
#include <functional>
#include <random>

#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

const char* const k_pass = "correct horse battery";
const std::string k_obj = " --object secret,id=sec0,data='correct horse battery' ";

class Qcow2Encryption : public Qcow2Interop {
protected:
    void SetUp() override
    {
        Qcow2Interop::SetUp();
        if (IsSkipped())
            return;
        m_ctx->add_secret("sec0", k_pass);
        m_ctx->add_secret("bad", "not the passphrase");
    }

    Result<std::unique_ptr<BlockNode>> open_enc(const std::string& p, bool rw, const std::string& secret = "sec0")
    {
        ImageSpec spec;
        spec.filename = p;
        spec.format = "qcow2";
        spec.flags.read_write = rw;
        if (!secret.empty())
            spec.options = OptionList::parse("encrypt.key-secret=" + secret).value();
        return run(m_ctx->open_image(spec));
    }

    // Closes and drops a node (its file lock goes with it).
    void finish(std::unique_ptr<BlockNode>& n)
    {
        ASSERT_TRUE(run(n->close()).ok());
        n.reset();
    }

    std::string image_opts(const std::string& p)
    {
        return k_obj + "--image-opts driver=qcow2,encrypt.key-secret=sec0,file.filename=" + p;
    }

    // QEMU's LUKS calibration fails at random here ("Unable to get accurate
    // CPU usage"): retry, and report false to skip only that oracle step.
    bool qemu_create(const std::string& p, const std::string& opts, const std::string& size = "4M")
    {
        std::string out;
        for (int attempt = 0; attempt < 40; ++attempt) {
            if (sh("rm -f " + p + "; qemu-img create -q -f qcow2" + k_obj + "-o encrypt.key-secret=sec0," + opts + " "
                       + p + " " + size,
                   &out)
                == 0)
                return true;
        }
        return false;
    }

    void expect_qemu_clean_enc(const std::string& p)
    {
        std::string out;
        EXPECT_EQ(sh("qemu-img check" + image_opts(p), &out), 0) << out;
        EXPECT_NE(out.find("No errors were found"), std::string::npos) << out;
    }

    std::vector<uint8_t> qemu_plain(const std::string& p)
    {
        std::string out, raw = path("plain.raw");
        EXPECT_EQ(sh("qemu-img convert" + image_opts(p) + " -O raw " + raw, &out), 0) << out;
        return read_host(raw);
    }

    void write_mix(BlockNode& n, std::vector<uint8_t>& shadow, uint32_t seed)
    {
        std::mt19937 rng(seed);
        for (int i = 0; i < 25; ++i) {
            uint64_t len = 1 + rng() % 90000; // unaligned too: read-modify-write
            uint64_t off = rng() % (shadow.size() - len);
            auto data = random_bytes(len, seed * 100 + i);
            kiln_write(n, off, data);
            std::copy(data.begin(), data.end(), shadow.begin() + off);
        }
        ASSERT_TRUE(run(n.pwrite_zeroes(1 << 20, 128 << 10, RequestFlags::MayUnmap)).ok());
        std::fill(shadow.begin() + (1 << 20), shadow.begin() + (1 << 20) + (128 << 10), 0);
    }
};

TEST_F(Qcow2Encryption, KilnLuksImagesOpenInQemu)
{
    for (const char* opts : {"encrypt.iter-time=10", "encrypt.cipher-alg=aes-128,encrypt.iter-time=10",
                             "encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,"
                             "encrypt.hash-alg=sha1,encrypt.iter-time=10,cluster_size=4k"}) {
        SCOPED_TRACE(opts);
        std::string img = path("k.qcow2");
        std::remove(img.c_str());
        kiln_create(img, 4 << 20, std::string("encrypt.format=luks,encrypt.key-secret=sec0,") + opts);
        auto n = open_enc(img, true);
        ASSERT_TRUE(n.ok()) << n.error().message();
        std::vector<uint8_t> shadow(4 << 20, 0);
        write_mix(**n, shadow, 1);
        EXPECT_EQ(kiln_read(**n, 0, shadow.size()), shadow);
        finish(*n);
        expect_qemu_clean_enc(img);
        EXPECT_EQ(qemu_plain(img), shadow);
        // The file holds no plaintext of what was written.
        auto host = read_host(img);
        auto probe = random_bytes(64, 100);
        EXPECT_EQ(std::search(host.begin(), host.end(), probe.begin(), probe.end()), host.end());
        // Same header and info as qemu-img reports.
        std::string out;
        ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0) << out;
        auto q = nlohmann::json::parse(out, nullptr, false);
        auto ro = open_enc(img, false, "");
        ASSERT_FALSE(ro.ok()); // no secret: no I/O open
        ImageSpec spec;
        spec.filename = img;
        spec.format = "qcow2";
        spec.flags.no_io = true;
        auto meta = run(m_ctx->open_image(spec));
        ASSERT_TRUE(meta.ok()) << meta.error().message();
        EXPECT_EQ(q["format-specific"], (*meta)->format_specific_info()) << out;
    }
}

TEST_F(Qcow2Encryption, QemuLuksImagesOpenInKiln)
{
    std::string img = path("q.qcow2"), out;
    if (!qemu_create(img, "encrypt.format=luks,encrypt.iter-time=10"))
        GTEST_SKIP() << "qemu-img could not calibrate LUKS iterations on this host";
    ASSERT_EQ(sh("qemu-io" + image_opts(img) + " -c 'write -P 0x5a 0 100k' -c 'write -P 0x6b 3M 4097'", &out), 0)
        << out;
    auto expect = qemu_plain(img);
    auto n = open_enc(img, true);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(kiln_read(**n, 0, expect.size()), expect);
    write_mix(**n, expect, 2);
    finish(*n);
    expect_qemu_clean_enc(img);
    EXPECT_EQ(qemu_plain(img), expect);

    auto wrong = open_enc(img, true, "bad");
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().message(), "Invalid password, cannot unlock any keyslot");
    auto missing = open_enc(img, true, "");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(), "Parameter 'encrypt.key-secret' is required for cipher");
    auto unknown = open_enc(img, true, "nosuch");
    ASSERT_FALSE(unknown.ok());
    for (auto* e : {&wrong, &missing, &unknown})
        EXPECT_EQ(e->error().message().find("horse"), std::string::npos);
}

TEST_F(Qcow2Encryption, LegacyAesBothWays)
{
    std::string img = path("a.qcow2"), out;
    ASSERT_TRUE(qemu_create(img, "encrypt.format=aes"));
    ASSERT_EQ(sh("qemu-io" + image_opts(img) + " -c 'write -P 0x21 64k 200k'", &out), 0) << out;
    auto expect = qemu_plain(img);
    auto n = open_enc(img, true);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(kiln_read(**n, 0, expect.size()), expect);
    write_mix(**n, expect, 3);
    EXPECT_EQ((*n)->format_specific_info()["data"]["encrypt"], nlohmann::json({{"format", "aes"}}));
    finish(*n);
    expect_qemu_clean_enc(img);
    EXPECT_EQ(qemu_plain(img), expect);

    std::string k = path("ka.qcow2");
    kiln_create(k, 4 << 20, "encrypt.format=aes,encrypt.key-secret=sec0");
    auto kn = open_enc(k, true);
    ASSERT_TRUE(kn.ok()) << kn.error().message();
    std::vector<uint8_t> shadow(4 << 20, 0);
    write_mix(**kn, shadow, 4);
    finish(*kn);
    expect_qemu_clean_enc(k);
    EXPECT_EQ(qemu_plain(k), shadow);
}

TEST_F(Qcow2Encryption, SnapshotsOfEncryptedImages)
{
    std::string img = path("s.qcow2");
    kiln_create(img, 4 << 20, "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10");
    auto n = open_enc(img, true);
    ASSERT_TRUE(n.ok()) << n.error().message();
    std::vector<uint8_t> a(4 << 20, 0);
    write_mix(**n, a, 5);
    SnapshotInfo sn;
    sn.name = "a";
    ASSERT_TRUE(run((*n)->snapshot_create(sn)).ok());
    std::vector<uint8_t> b = a;
    write_mix(**n, b, 6);
    ASSERT_TRUE(run((*n)->snapshot_goto("a")).ok());
    EXPECT_EQ(kiln_read(**n, 0, a.size()), a);
    finish(*n);
    expect_qemu_clean_enc(img);
    EXPECT_EQ(qemu_plain(img), a);
}

TEST_F(Qcow2Encryption, CreateRefusesWhatCannotWork)
{
    auto create = [&](const std::string& opts) {
        auto o = OptionList::parse(opts).value();
        return run(m_ctx->create_image("qcow2", path("x.qcow2"), 1 << 20, o));
    };
    auto r = create("encrypt.format=luks");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Parameter 'encrypt.key-secret' is required for cipher");
    EXPECT_FALSE(std::filesystem::exists(path("x.qcow2"))); // refused before creating the file
    EXPECT_FALSE(create("encrypt.format=luks,encrypt.key-secret=nosuch").ok());
    EXPECT_FALSE(create("encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=des").ok());
    EXPECT_FALSE(create("encrypt.format=luks,encrypt.key-secret=sec0,preallocation=metadata").ok());
    EXPECT_FALSE(create("encrypt.format=rot13,encrypt.key-secret=sec0").ok());
}

TEST_F(Qcow2Encryption, HostileCryptoHeadersFailCleanly)
{
    std::string img = path("h.qcow2");
    kiln_create(img, 1 << 20, "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10");
    auto pristine = read_host(img);
    // Find the crypto extension (type 0x0537be77) after the 112-byte header.
    size_t ext = 0;
    for (size_t p = 112; p + 8 < 4096;) {
        uint32_t type = qcow2::load_be32(&pristine[p]);
        uint32_t len = qcow2::load_be32(&pristine[p + 4]);
        if (type == 0x0537be77) {
            ext = p;
            break;
        }
        if (type == 0)
            break;
        p += 8 + (len + 7) / 8 * 8;
    }
    ASSERT_NE(ext, 0u);
    uint64_t area = qcow2::load_be64(&pristine[ext + 8]);
    std::vector<std::function<void(std::vector<uint8_t>&)>> damage = {
        [&](auto& b) { qcow2::store_be64(&b[ext + 8], 1ull << 50); },       // offset past EOF
        [&](auto& b) { qcow2::store_be64(&b[ext + 8], area + 512); },       // unaligned
        [&](auto& b) { qcow2::store_be64(&b[ext + 16], 100); },             // shorter than a LUKS header
        [&](auto& b) { qcow2::store_be64(&b[ext + 16], ~0ull); },           // longer than the file
        [&](auto& b) { qcow2::store_be32(&b[ext + 4], 8); },                // wrong extension length
        [&](auto& b) { b[area] = 'X'; },                                    // bad LUKS magic
        [&](auto& b) { qcow2::store_be32(&b[area + 104], 0); },             // payload offset 0
        [&](auto& b) { qcow2::store_be32(&b[area + 212], 0x7fffffff); },   // slot 0 iterations
    };
    for (size_t i = 0; i < damage.size(); ++i) {
        auto bytes = pristine;
        damage[i](bytes);
        write_host(img, bytes);
        auto n = open_enc(img, false);
        EXPECT_FALSE(n.ok()) << "case " << i;
        if (!n.ok()) {
            EXPECT_EQ(n.error().message().find('\n'), std::string::npos);
        }
    }
}

} // namespace

namespace {

TEST_F(Qcow2Encryption, CheckCountsTheLuksAreaSoRepairKeepsIt)
{
    std::string img = path("c.qcow2");
    kiln_create(img, 1 << 20, "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10");
    auto n = open_enc(img, true);
    ASSERT_TRUE(n.ok()) << n.error().message();
    kiln_write(**n, 0, random_bytes(4096, 9));
    auto c = run((*n)->check(CheckFix::All));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->leaks, 0u);
    EXPECT_EQ(c->corruptions, 0u);
    finish(*n);
    expect_qemu_clean_enc(img);
    auto again = open_enc(img, false);
    ASSERT_TRUE(again.ok()) << again.error().message(); // key material intact
}

} // namespace
