#include "block/raw/raw_node.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

using RawTest = BlockFixture;

static OptionList opts(const char* text) { return OptionList::parse(text).value(); }

TEST_F(RawTest, CreateWithEachPreallocation)
{
    constexpr uint64_t size = 4 << 20;
    ASSERT_TRUE(run(m_ctx->create_image("raw", path("off.img"), size, {})).ok());
    ASSERT_TRUE(run(m_ctx->create_image("raw", path("falloc.img"), size, opts("preallocation=falloc"))).ok());
    ASSERT_TRUE(run(m_ctx->create_image("raw", path("full.img"), size, opts("preallocation=full"))).ok());
    for (auto* name : { "off.img", "falloc.img", "full.img" })
        EXPECT_EQ(std::filesystem::file_size(path(name)), size) << name;
    EXPECT_EQ(st_blocks_bytes(path("off.img")), 0u);
    EXPECT_GE(st_blocks_bytes(path("falloc.img")), size);
    EXPECT_GE(st_blocks_bytes(path("full.img")), size);

    auto bad = run(m_ctx->create_image("raw", path("x.img"), size, opts("preallocation=foo")));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "invalid parameter value: foo");
    auto meta = run(m_ctx->create_image("raw", path("x.img"), size, opts("preallocation=metadata")));
    ASSERT_FALSE(meta.ok());
    EXPECT_EQ(meta.error().message(), "Unsupported preallocation mode: metadata");
}

TEST_F(RawTest, CreateTruncatesAnExistingFile)
{
    make_file(path("a.img"), 1 << 20);
    ASSERT_TRUE(run(m_ctx->create_image("raw", path("a.img"), 8192, {})).ok());
    EXPECT_EQ(std::filesystem::file_size(path("a.img")), 8192u);
    auto node = run(m_ctx->open_image({ path("a.img"), "raw", {}, {} }));
    ASSERT_TRUE(node.ok());
    std::vector<uint8_t> buf(8192, 0xff);
    ASSERT_TRUE(run(node.value()->preadv(0, QIov(buf.data(), buf.size()))).ok());
    EXPECT_TRUE(buffer_is_zero(buf.data(), buf.size()));
}

TEST_F(RawTest, PassesThroughToTheFile)
{
    make_file(path("a.img"), 1 << 20);
    OpenFlags flags;
    flags.read_write = true;
    auto node = run(m_ctx->open_image({ path("a.img"), "raw", {}, flags }));
    ASSERT_TRUE(node.ok());
    auto& raw = *node.value();
    EXPECT_EQ(raw.driver_name(), "raw");
    EXPECT_EQ(raw.filename(), path("a.img"));
    EXPECT_FALSE(raw.read_only());
    std::vector<uint8_t> data(1000, 0x42);
    ASSERT_TRUE(run(raw.pwritev(3000, QIov(data.data(), data.size()), RequestFlags::None)).ok());
    std::vector<uint8_t> back(1000);
    ASSERT_TRUE(run(raw.preadv(3000, QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, data);
    ASSERT_TRUE(run(raw.pwrite_zeroes(0, 65536, RequestFlags::MayUnmap)).ok());
    auto s = run(raw.block_status(0, 1 << 20));
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(s->flags & BlockStatus::Zero);
    EXPECT_TRUE(s->flags & BlockStatus::Allocated);
    ASSERT_TRUE(run(raw.truncate(2 << 20, PreallocMode::Off, false)).ok());
    EXPECT_EQ(raw.size_bytes(), 2u << 20);
    EXPECT_EQ(std::filesystem::file_size(path("a.img")), 2u << 20);
    ASSERT_TRUE(run(raw.close()).ok());
}

TEST_F(RawTest, OffsetAndSizeWindow)
{
    make_file(path("a.img"), 1 << 20);
    OpenFlags flags;
    flags.read_write = true;
    auto node = run(m_ctx->open_image({ path("a.img"), "raw", opts("offset=4096,size=8192"), flags }));
    ASSERT_TRUE(node.ok()) << node.error().message();
    auto& raw = *node.value();
    EXPECT_EQ(raw.size_bytes(), 8192u);
    std::vector<uint8_t> buf(16);
    ASSERT_TRUE(run(raw.preadv(0, QIov(buf.data(), buf.size()))).ok());
    for (size_t i = 0; i < buf.size(); ++i)
        EXPECT_EQ(buf[i], pattern(4096 + i));
    auto s = run(raw.block_status(0, 8192));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->host_offset, 4096u);
    EXPECT_FALSE(run(raw.truncate(1 << 20, PreallocMode::Off, false)).ok());

    auto r = run(m_ctx->open_image({ path("a.img"), "raw", opts("offset=4096,size=1000"), {} }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Specified size is not multiple of 512");
    r = run(m_ctx->open_image({ path("a.img"), "raw", opts("offset=4096,size=10000000"), {} }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
        "The sum of offset (4096) and size (10000000) has to be smaller or equal to the  "
        "actual size of the containing file (1048576)");
    r = run(m_ctx->open_image({ path("a.img"), "raw", opts("offset=2000000"), {} }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Offset (2000000) cannot be greater than size of the containing file (1048576)");
}

TEST_F(RawTest, RejectsUnknownOptionsAndInheritsCacheOptions)
{
    make_file(path("a.img"), 65536);
    auto r = run(m_ctx->open_image({ path("a.img"), "raw", opts("foo=1"), {} }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Block format 'raw' does not support the option 'foo'");
    auto node = run(m_ctx->open_image({ path("a.img"), "raw", opts("cache.direct=on,node-name=x"), {} }));
    ASSERT_TRUE(node.ok()) << node.error().message();
    EXPECT_GT(node.value()->request_alignment(), 1u);
}
