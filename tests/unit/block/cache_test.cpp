// Cache modes and engine selection of the file node.
#include "block/file/file_node.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

struct Observed {
    bool direct;
    uint64_t flushes_after_write;
    uint64_t flushes_after_flush;
};

} // namespace

class CacheTest : public BlockFixture {
protected:
    // One aligned write, then a flush; what reached the host.
    Observed observe(CacheMode mode, RequestFlags flags = RequestFlags::None)
    {
        make_file(path("c.img"), 65536);
        auto node = open_file(path("c.img"), rw_flags(mode));
        auto* file = dynamic_cast<FileNode*>(node.get());
        alignas(4096) static uint8_t buf[4096];
        EXPECT_TRUE(run(node->pwritev(0, QIov(buf, sizeof buf), flags)).ok());
        Observed o { file->direct_io(), file->host_flushes(), 0 };
        EXPECT_TRUE(run(node->flush()).ok());
        o.flushes_after_flush = file->host_flushes();
        return o;
    }
};

TEST_F(CacheTest, ModesMapToODirectAndFlushes)
{
    auto wb = observe(CacheMode::Writeback);
    EXPECT_FALSE(wb.direct);
    EXPECT_EQ(wb.flushes_after_write, 0u);
    EXPECT_EQ(wb.flushes_after_flush, 1u);

    auto wt = observe(CacheMode::Writethrough);
    EXPECT_FALSE(wt.direct);
    EXPECT_EQ(wt.flushes_after_write, 1u);

    auto none = observe(CacheMode::None);
    EXPECT_TRUE(none.direct);
    EXPECT_EQ(none.flushes_after_write, 0u);
    EXPECT_EQ(none.flushes_after_flush, 1u);

    auto ds = observe(CacheMode::Directsync);
    EXPECT_TRUE(ds.direct);
    EXPECT_EQ(ds.flushes_after_write, 1u);

    auto unsafe = observe(CacheMode::Unsafe);
    EXPECT_FALSE(unsafe.direct);
    EXPECT_EQ(unsafe.flushes_after_flush, 0u);

    auto fua = observe(CacheMode::Writeback, RequestFlags::Fua);
    EXPECT_EQ(fua.flushes_after_write, 1u);
}

TEST_F(CacheTest, CacheOptionsOverrideTheMode)
{
    make_file(path("c.img"), 65536);
    auto node = open_file(
        path("c.img"), rw_flags(CacheMode::Writeback), OptionList::parse("cache.direct=on,cache.no-flush=on").value());
    auto* file = dynamic_cast<FileNode*>(node.get());
    ASSERT_NE(file, nullptr);
    EXPECT_TRUE(file->direct_io());
    EXPECT_GT(file->request_alignment(), 1u);
    ASSERT_TRUE(run(node->flush()).ok());
    EXPECT_EQ(file->host_flushes(), 0u);
    auto bad = run(m_ctx->open_file(path("c.img"), OptionList::parse("cache.direct=x").value(), OpenFlags {}));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "Parameter 'cache.direct' expects 'on' or 'off'");
}

TEST_F(CacheTest, DefaultEngineIsIoUringWhenAvailable)
{
    make_file(path("c.img"), 4096);
    auto node = open_file(path("c.img"), OpenFlags {});
    auto* file = dynamic_cast<FileNode*>(node.get());
    ASSERT_NE(file, nullptr);
    bool uring = bool(make_uring_engine(*m_loop));
    EXPECT_EQ(file->engine(), uring ? AioEngine::IoUring : AioEngine::Threads);
    auto threads = open_file(path("c.img"), OpenFlags {}, OptionList::parse("aio=threads").value());
    EXPECT_EQ(dynamic_cast<FileNode*>(threads.get())->engine(), AioEngine::Threads);
}

TEST(BlockTypes, ParseNames)
{
    EXPECT_EQ(parse_cache_mode("none"), CacheMode::None);
    EXPECT_EQ(parse_cache_mode("off"), CacheMode::None);
    EXPECT_EQ(parse_cache_mode("writeback"), CacheMode::Writeback);
    EXPECT_EQ(parse_cache_mode("writethrough"), CacheMode::Writethrough);
    EXPECT_EQ(parse_cache_mode("directsync"), CacheMode::Directsync);
    EXPECT_EQ(parse_cache_mode("unsafe"), CacheMode::Unsafe);
    EXPECT_FALSE(parse_cache_mode("bogus"));
    EXPECT_TRUE(cache_uses_o_direct(CacheMode::Directsync));
    EXPECT_FALSE(cache_uses_o_direct(CacheMode::Writethrough));
    for (auto e : { AioEngine::Threads, AioEngine::Native, AioEngine::IoUring })
        EXPECT_EQ(parse_aio_engine(aio_engine_name(e)), e);
    EXPECT_FALSE(parse_aio_engine("posix"));
    for (auto m : { PreallocMode::Off, PreallocMode::Metadata, PreallocMode::Falloc, PreallocMode::Full })
        EXPECT_EQ(parse_prealloc(prealloc_name(m)), m);
    EXPECT_FALSE(parse_prealloc("some"));
}
