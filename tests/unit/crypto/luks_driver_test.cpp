// The `luks` format driver through BlockContext: create, probe, open with
// and without the secret, encrypted reads and writes (aligned or not),
// format-specific info, resize.
#include <fstream>

#include "block/luks/luks_node.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

class LuksDriverTest : public BlockFixture {
protected:
    void SetUp() override
    {
        BlockFixture::SetUp();
        m_ctx->add_secret("sec0", "abc");
        m_ctx->add_secret("bad", "abd");
    }

    void create(const std::string& name, uint64_t size, const char* extra = "")
    {
        std::string text = std::string("key-secret=sec0,iter-time=1") + extra;
        auto r = run(m_ctx->create_image("luks", path(name), size, OptionList::parse(text).value()));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }

    Result<std::unique_ptr<BlockNode>> open(
        const std::string& name, const char* opts = "key-secret=sec0", bool rw = true, std::string format = "luks")
    {
        ImageSpec spec { path(name), format, OptionList::parse(opts).value(), {} };
        spec.flags.read_write = rw;
        return run(m_ctx->open_image(spec));
    }
};

std::vector<uint8_t> read_file_bytes(const std::string& p, uint64_t offset, size_t len)
{
    std::ifstream in(p, std::ios::binary);
    in.seekg(std::streamoff(offset));
    std::vector<uint8_t> out(len);
    in.read(reinterpret_cast<char*>(out.data()), std::streamsize(len));
    return out;
}

} // namespace

TEST_F(LuksDriverTest, CreateProbeAndSize)
{
    create("a.luks", 1 << 20);
    EXPECT_EQ(std::filesystem::file_size(path("a.luks")), 2068480u + (1 << 20));
    // Only the header and slot 0 are written.
    EXPECT_LE(st_blocks_bytes(path("a.luks")), 512u * 1024);
    auto fmt = run(m_ctx->probe_format(path("a.luks"), {}));
    ASSERT_TRUE(fmt.ok());
    EXPECT_EQ(*fmt, "luks");
    auto node = open("a.luks", "key-secret=sec0", false, "");
    ASSERT_TRUE(node.ok()) << node.error().message();
    EXPECT_EQ((*node)->driver_name(), "luks");
    EXPECT_EQ((*node)->size_bytes(), 1u << 20);
    EXPECT_EQ((*node)->request_alignment(), 512u);
}

TEST_F(LuksDriverTest, DataIsEncryptedOnDiskAndReadsBack)
{
    create("a.luks", 1 << 20);
    auto node = open("a.luks");
    ASSERT_TRUE(node.ok()) << node.error().message();
    std::vector<uint8_t> data(65536, 0x5a);
    ASSERT_TRUE(run((*node)->pwritev(4096, QIov(data.data(), data.size()), RequestFlags::None)).ok());
    std::vector<uint8_t> back(65536);
    ASSERT_TRUE(run((*node)->preadv(4096, QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, data);
    ASSERT_TRUE(run((*node)->close()).ok());
    auto raw = read_file_bytes(path("a.luks"), 2068480 + 4096, 65536);
    EXPECT_NE(raw, data);
    EXPECT_EQ(std::count(raw.begin(), raw.end(), 0x5a), std::count(raw.begin(), raw.end(), 0x5a)); // sanity
    EXPECT_LT(std::count(raw.begin(), raw.end(), 0x5a), 1000);
}

TEST_F(LuksDriverTest, UnalignedWritesKeepNeighbouringBytes)
{
    create("a.luks", 1 << 20);
    auto node = open("a.luks");
    ASSERT_TRUE(node.ok());
    std::vector<uint8_t> base(8192);
    for (size_t i = 0; i < base.size(); ++i)
        base[i] = uint8_t(i * 31);
    ASSERT_TRUE(run((*node)->pwritev(0, QIov(base.data(), base.size()), RequestFlags::None)).ok());
    for (auto [off, len] :
        std::vector<std::pair<size_t, size_t>> { { 100, 10 }, { 500, 30 }, { 1000, 3000 }, { 4095, 1 } }) {
        std::vector<uint8_t> patch(len, 0xee);
        ASSERT_TRUE(run((*node)->pwritev(off, QIov(patch.data(), patch.size()), RequestFlags::None)).ok());
        std::fill(base.begin() + ptrdiff_t(off), base.begin() + ptrdiff_t(off + len), 0xee);
    }
    std::vector<uint8_t> back(8192);
    ASSERT_TRUE(run((*node)->preadv(0, QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, base);
    std::vector<uint8_t> mid(77);
    ASSERT_TRUE(run((*node)->preadv(1001, QIov(mid.data(), mid.size()))).ok());
    EXPECT_TRUE(std::equal(mid.begin(), mid.end(), base.begin() + 1001));
}

TEST_F(LuksDriverTest, LargeRequestsSpanSeveralChunks)
{
    create("a.luks", 4 << 20);
    auto node = open("a.luks");
    ASSERT_TRUE(node.ok());
    std::vector<uint8_t> data(3 << 20);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = uint8_t(i / 512 + i);
    ASSERT_TRUE(run((*node)->pwritev(512, QIov(data.data(), data.size()), RequestFlags::None)).ok());
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(run((*node)->preadv(512, QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, data);
}

TEST_F(LuksDriverTest, SecretErrors)
{
    create("a.luks", 1 << 20);
    auto none = open("a.luks", "");
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().message(), "Parameter 'key-secret' is required for cipher");
    auto wrong = open("a.luks", "key-secret=bad");
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().message(), "Invalid password, cannot unlock any keyslot");
    auto missing = open("a.luks", "key-secret=nosuch");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(), "No secret with id 'nosuch'");
    auto unknown = open("a.luks", "key-secret=sec0,foo=1");
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().message(), "Block format 'luks' does not support the option 'foo'");

    auto create_none = run(m_ctx->create_image("luks", path("b.luks"), 1 << 20, {}));
    ASSERT_FALSE(create_none.ok());
    EXPECT_EQ(create_none.error().message(), "Parameter 'key-secret' is required for cipher");
    EXPECT_FALSE(std::filesystem::exists(path("b.luks")));
}

TEST_F(LuksDriverTest, MetadataOnlyOpenNeedsNoSecret)
{
    create("a.luks", 1 << 20, ",cipher-mode=cbc,ivgen-alg=essiv");
    ImageSpec spec { path("a.luks"), "", {}, {} };
    spec.flags.no_io = true;
    auto node = run(m_ctx->open_image(spec));
    ASSERT_TRUE(node.ok()) << node.error().message();
    auto info = (*node)->format_specific_info();
    EXPECT_EQ(info["type"], "luks");
    EXPECT_EQ(info["data"]["cipher-mode"], "cbc");
    EXPECT_EQ(info["data"]["ivgen-alg"], "essiv");
    EXPECT_EQ(info["data"]["ivgen-hash-alg"], "sha256");
    // AES-256-CBC: 32-byte key, 250 sectors of key material per slot, stride 256.
    EXPECT_EQ(info["data"]["payload-offset"], (8 + 8 * 256) * 512);
    EXPECT_EQ(info["data"]["slots"][1]["key-offset"], (8 + 256) * 512);
    EXPECT_FALSE(info["data"]["slots"][1].contains("iters"));
    std::vector<uint8_t> buf(512);
    EXPECT_FALSE(run((*node)->preadv(0, QIov(buf.data(), buf.size()))).ok());
}

TEST_F(LuksDriverTest, HostileFilesAreRefused)
{
    create("a.luks", 1 << 20);
    // Truncate into the key material: the payload offset is past the end.
    std::filesystem::resize_file(path("a.luks"), 100000);
    auto cut = open("a.luks");
    ASSERT_FALSE(cut.ok());
    EXPECT_NE(cut.error().message().find("beyond the end"), std::string::npos);
    make_file(path("tiny.luks"), 0);
    {
        std::ofstream out(path("tiny.luks"), std::ios::binary);
        out.write("LUKS\xba\xbe\0\1", 8);
    }
    auto tiny = open("tiny.luks");
    ASSERT_FALSE(tiny.ok());
    EXPECT_NE(tiny.error().message().find("too short"), std::string::npos);
}

TEST_F(LuksDriverTest, ResizeChangesTheVirtualSize)
{
    create("a.luks", 1 << 20);
    auto node = open("a.luks");
    ASSERT_TRUE(node.ok());
    ASSERT_TRUE(run((*node)->truncate(2 << 20, PreallocMode::Off, false)).ok());
    EXPECT_EQ((*node)->size_bytes(), 2u << 20);
    EXPECT_EQ(std::filesystem::file_size(path("a.luks")), 2068480u + (2 << 20));
}
