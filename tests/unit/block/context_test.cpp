#include "block/file/file_node.h"
#include "block/raw/raw_node.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

using ContextTest = BlockFixture;

TEST_F(ContextTest, FindsFormatsFromRegistry)
{
    EXPECT_NE(m_ctx->find_format("raw"), nullptr);
    EXPECT_NE(m_ctx->find_format("qcow2"), nullptr);
    EXPECT_EQ(m_ctx->find_format("foo"), nullptr);
}

TEST_F(ContextTest, MissingFileGivesQemuMessage)
{
    auto r = run(m_ctx->open_file(path("nope.img"), {}, OpenFlags {}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Could not open '" + path("nope.img") + "': No such file or directory");
    EXPECT_EQ(r.error().kind(), ErrorKind::NotFound);
}

TEST_F(ContextTest, UnknownDriver)
{
    make_file(path("a.img"), 4096);
    ImageSpec spec { path("a.img"), "foo", {}, {} };
    auto r = run(m_ctx->open_image(spec));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Unknown driver 'foo'");
    auto c = run(m_ctx->create_image("foo", path("b.img"), 4096, {}));
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message(), "Unknown driver 'foo'");
}

TEST_F(ContextTest, ProbingGuessesRawAndReportsIt)
{
    make_file(path("a.img"), 8192);
    auto fmt = run(m_ctx->probe_format(path("a.img"), OpenFlags {}));
    ASSERT_TRUE(fmt.ok());
    EXPECT_EQ(fmt.value(), "raw");
    ImageSpec spec { path("a.img"), "", {}, {} };
    auto node = run(m_ctx->open_image(spec));
    ASSERT_TRUE(node.ok()) << node.error().message();
    EXPECT_EQ(node.value()->driver_name(), "raw");
    EXPECT_EQ(node.value()->size_bytes(), 8192u);
    auto probed = m_ctx->take_probed_raw();
    ASSERT_EQ(probed.size(), 1u);
    EXPECT_EQ(probed[0], path("a.img"));
    EXPECT_TRUE(m_ctx->take_probed_raw().empty());
    // An explicit format is not a guess.
    ImageSpec explicit_spec { path("a.img"), "raw", {}, {} };
    ASSERT_TRUE(run(m_ctx->open_image(explicit_spec)).ok());
    EXPECT_TRUE(m_ctx->take_probed_raw().empty());
    EXPECT_EQ(probed_raw_warning("x").substr(0, 72),
        "WARNING: Image format was not specified for 'x' and probing guessed raw.");
}

TEST_F(ContextTest, ProbeScoresPickBestFormat)
{
    // A qcow2 magic must not probe as raw once qcow2's probe exists; with
    // only the placeholder it still must not crash on a short file.
    make_file(path("empty.img"), 0);
    auto fmt = run(m_ctx->probe_format(path("empty.img"), OpenFlags {}));
    ASSERT_TRUE(fmt.ok());
    EXPECT_EQ(fmt.value(), "raw");
}

TEST_F(ContextTest, ResolvesBackingPaths)
{
    EXPECT_EQ(resolve_backing_path("/a/b/top.qcow2", "base.raw"), "/a/b/base.raw");
    EXPECT_EQ(resolve_backing_path("/a/b/top.qcow2", "/abs/base.raw"), "/abs/base.raw");
    EXPECT_EQ(resolve_backing_path("top.qcow2", "base.raw"), "base.raw");
    EXPECT_EQ(resolve_backing_path("dir/top.qcow2", "../base.raw"), "dir/../base.raw");
    EXPECT_EQ(resolve_backing_path("/a/top.qcow2", "nbd:localhost:10809"), "nbd:localhost:10809");
    EXPECT_EQ(resolve_backing_path("/a/top.qcow2", "json:{}"), "json:{}");
}

TEST_F(ContextTest, Secrets)
{
    m_ctx->add_secret("sec0", "hunter2");
    EXPECT_EQ(m_ctx->secret("sec0").value(), "hunter2");
    auto r = m_ctx->secret("nope");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "No secret with id 'nope'");
}

TEST_F(ContextTest, FileOptionsAreHonouredAndCheckedFromImageSpec)
{
    make_file(path("a.img"), 4096);
    ImageSpec spec { path("a.img"), "raw", OptionList::parse("file.locking=off,file.aio=threads").value(), {} };
    auto node = run(m_ctx->open_image(spec));
    ASSERT_TRUE(node.ok()) << node.error().message();
    auto* file = dynamic_cast<FileNode*>(node.value()->file());
    ASSERT_NE(file, nullptr);
    EXPECT_FALSE(file->locking());
    EXPECT_EQ(file->engine(), AioEngine::Threads);

    ImageSpec bad { path("a.img"), "raw", OptionList::parse("file.bar=1").value(), {} };
    auto r = run(m_ctx->open_image(bad));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Block protocol 'file' doesn't support the option 'bar'");
    ImageSpec bad_lock { path("a.img"), "raw", OptionList::parse("file.locking=maybe").value(), {} };
    r = run(m_ctx->open_image(bad_lock));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "invalid parameter value: maybe");
}

TEST_F(ContextTest, NativeAioNeedsDirect)
{
    make_file(path("a.img"), 4096);
    OpenFlags flags;
    flags.aio = AioEngine::Native;
    auto r = run(m_ctx->open_file(path("a.img"), {}, flags));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(
        r.error().message(), "aio=native was specified, but it requires cache.direct=on, which was not specified.");
}

TEST_F(ContextTest, OnlyFilesAndDevicesOpen)
{
    auto r = run(m_ctx->open_file(m_dir, {}, OpenFlags {}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "'file' driver requires '" + m_dir + "' to be a regular file");
    ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
    r = run(m_ctx->open_file(path("fifo"), {}, OpenFlags {}));
    ASSERT_FALSE(r.ok()); // and, above all, returns instead of waiting for a writer
    // Character devices work as in QEMU (size 0).
    auto null_dev = run(m_ctx->open_image({ "/dev/null", "raw", {}, OpenFlags {} }));
    ASSERT_TRUE(null_dev.ok()) << null_dev.error().message();
    EXPECT_EQ(null_dev.value()->size_bytes(), 0u);
}

TEST_F(ContextTest, ZeroesAndDiscardOnACharacterDeviceFallBack)
{
    OpenFlags rw;
    rw.read_write = true;
    auto node = run(m_ctx->open_file("/dev/null", {}, rw));
    ASSERT_TRUE(node.ok()) << node.error().message();
    EXPECT_TRUE(run(node.value()->pwrite_zeroes(0, 8192, RequestFlags::MayUnmap)).ok());
    EXPECT_TRUE(run(node.value()->pdiscard(0, 8192)).ok());
    auto strict = run(node.value()->pwrite_zeroes(0, 8192, RequestFlags::NoFallback));
    EXPECT_FALSE(strict.ok());
}
