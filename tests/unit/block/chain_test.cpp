// Backing chains through BlockContext::open_image, with a tiny test format
// ("CHAIN\n<backing name>\n") whose driver opens its backing file exactly
// as real format drivers do.
#include <cstring>

#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

constexpr char k_magic[] = "CHAIN\n";

class ChainNode final : public BlockNode {
public:
    ChainNode(BlockContext& ctx, std::unique_ptr<BlockNode> file, std::unique_ptr<BlockNode> backing,
        std::string backing_name)
        : BlockNode(ctx)
        , m_backing_name(std::move(backing_name))
    {
        m_file = std::move(file);
        m_backing = std::move(backing);
    }
    std::string_view driver_name() const override { return "testchain"; }
    std::string filename() const override { return m_file->filename(); }
    uint64_t size_bytes() const override { return 4096; }
    std::string backing_file_name() const override { return m_backing_name; }
    Task<Result<void>> preadv(uint64_t, QIov qiov) override
    {
        qiov.fill(0, 0, qiov.size());
        co_return ok();
    }
    Task<Result<void>> pwritev(uint64_t, QIov, RequestFlags) override { co_return ok(); }

private:
    std::string m_backing_name;
};

int probe_chain(std::span<const uint8_t> header, const std::string&)
{
    return header.size() >= 6 && std::memcmp(header.data(), k_magic, 6) == 0 ? 100 : 0;
}

Task<Result<std::unique_ptr<BlockNode>>> open_chain(
    BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec)
{
    std::string header(std::min<uint64_t>(file->size_bytes(), 512), '\0');
    CO_TRY(co_await file->preadv(0, QIov(header.data(), header.size())));
    std::string name = header.substr(6, header.find('\n', 6) - 6);
    std::unique_ptr<BlockNode> backing;
    if (!name.empty() && !spec.flags.no_backing) {
        ImageSpec bspec;
        bspec.filename = resolve_backing_path(spec.filename, name);
        bspec.options = spec.options.subtree("backing");
        bspec.flags = spec.flags;
        bspec.flags.read_write = false;
        auto b = co_await ctx.open_image(bspec);
        if (!b)
            co_return std::move(b).error().with_context("Could not open backing file");
        backing = std::move(b).value();
    }
    co_return std::unique_ptr<BlockNode>(new ChainNode(ctx, std::move(file), std::move(backing), name));
}

Task<Result<void>> create_chain(BlockContext&, const std::string&, uint64_t, const OptionList&)
{
    co_return Error::not_supported("no");
}

const FormatDriver k_chain_driver { "testchain", probe_chain, open_chain, create_chain,
    [] { return std::vector<CreateOptionInfo> {}; } };

class ChainTest : public BlockFixture {
protected:
    void SetUp() override
    {
        BlockFixture::SetUp();
        m_ctx->add_format(&k_chain_driver);
    }
    void make_chain(const std::string& p, const std::string& backing)
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out << k_magic << backing << "\n";
    }
    Result<std::unique_ptr<BlockNode>> open(const std::string& p, OpenFlags flags = {})
    {
        return run(m_ctx->open_image({ p, "", {}, flags }));
    }
};

TEST_F(ChainTest, OpensChainWithRelativeNamesAndProbedRawBase)
{
    std::filesystem::create_directory(path("sub"));
    make_file(path("base.raw"), 4096);
    make_chain(path("sub/mid"), "../base.raw");
    make_chain(path("top"), "sub/mid");
    auto top = open(path("top"));
    ASSERT_TRUE(top.ok()) << top.error().message();
    EXPECT_EQ(top.value()->driver_name(), "testchain");
    BlockNode* mid = top.value()->backing();
    ASSERT_NE(mid, nullptr);
    EXPECT_EQ(mid->filename(), path("sub/mid"));
    ASSERT_NE(mid->backing(), nullptr);
    EXPECT_EQ(mid->backing()->driver_name(), "raw");
    EXPECT_EQ(mid->backing()->filename(), path("sub/../base.raw"));
    EXPECT_EQ(m_ctx->take_probed_raw(), std::vector<std::string> { path("sub/../base.raw") });
    EXPECT_EQ(m_ctx->open_depth(), 0);
}

TEST_F(ChainTest, MissingBackingFile)
{
    make_chain(path("top"), "missing.img");
    auto r = open(path("top"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
        "Could not open backing file: Could not open '" + path("missing.img") + "': No such file or directory");
    EXPECT_EQ(m_ctx->open_depth(), 0);
    OpenFlags no_backing;
    no_backing.no_backing = true;
    EXPECT_TRUE(open(path("top"), no_backing).ok());
}

TEST_F(ChainTest, LoopsFailNamingTheFile)
{
    make_chain(path("self"), "self");
    auto r = open(path("self"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
        "Could not open backing file: Backing file '" + path("self") + "' creates an infinite loop.");

    make_chain(path("a"), "b");
    make_chain(path("b"), "./a");
    r = open(path("a"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(
        r.error().message().find("Backing file '" + path("./a") + "' creates an infinite loop."), std::string::npos)
        << r.error().message();
    EXPECT_EQ(m_ctx->open_depth(), 0);
    // A file used twice in one chain through a hard link is the same file.
    make_chain(path("c"), "c-link");
    ASSERT_EQ(link(path("c").c_str(), path("c-link").c_str()), 0);
    r = open(path("c"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("creates an infinite loop"), std::string::npos);
}

TEST_F(ChainTest, DepthLimit)
{
    make_file(path("base.raw"), 4096);
    make_chain(path("l1"), "base.raw");
    make_chain(path("l2"), "l1");
    make_chain(path("l3"), "l2");
    m_ctx->open_depth() = BlockContext::k_max_open_depth - 2;
    auto r = open(path("l3"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("is deeper than"), std::string::npos) << r.error().message();
    EXPECT_EQ(m_ctx->open_depth(), BlockContext::k_max_open_depth - 2);
    m_ctx->open_depth() = 0;
    EXPECT_TRUE(open(path("l3")).ok());
}

} // namespace

namespace {

TEST_F(ChainTest, ProbedRawRefusesWritesThatChangeTheFormat)
{
    make_file(path("disk.raw"), 65536, 0);
    OpenFlags rw;
    rw.read_write = true;
    auto probed = run(m_ctx->open_image({ path("disk.raw"), "", {}, rw }));
    ASSERT_TRUE(probed.ok());
    std::string magic = "CHAIN\nx\n";
    auto r = run(probed.value()->pwritev(0, QIov(magic.data(), magic.size()), RequestFlags::None));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::PermissionDenied);
    // Other data in block 0 is fine, as is anything past it.
    std::string text = "hello";
    EXPECT_TRUE(run(probed.value()->pwritev(0, QIov(text.data(), text.size()), RequestFlags::None)).ok());
    EXPECT_TRUE(run(probed.value()->pwritev(4096, QIov(magic.data(), magic.size()), RequestFlags::None)).ok());
    // A partial write that completes the magic with bytes already there.
    std::string tail = "AIN\n";
    std::string head = "CH";
    EXPECT_TRUE(run(probed.value()->pwritev(0, QIov(head.data(), head.size()), RequestFlags::None)).ok());
    EXPECT_FALSE(run(probed.value()->pwritev(2, QIov(tail.data(), tail.size()), RequestFlags::None)).ok());
    probed.value().reset();
    // With the format named there is no restriction.
    auto named = run(m_ctx->open_image({ path("disk.raw"), "raw", {}, rw }));
    ASSERT_TRUE(named.ok());
    EXPECT_TRUE(run(named.value()->pwritev(0, QIov(magic.data(), magic.size()), RequestFlags::None)).ok());
}

} // namespace
