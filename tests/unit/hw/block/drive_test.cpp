// Drive: opening images with QEMU's messages, image locks against a second
// writer (Kiln or qemu-io), snapshot=on overlays, unknown format options,
// detect-zeroes, discard=ignore and the error policies.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <sys/wait.h>

#include "block/file/file_node.h"
#include "tests/unit/hw/block/disk_fixture.h"
#include "tests/unit/qcow2/mem_node.h"

namespace kiln::hw::test {
namespace {

class DriveTest : public DiskFixture {
protected:
    DriveConfig raw_cfg(const std::string& file)
    {
        DriveConfig c;
        c.id = "d";
        c.file = file;
        c.format = "raw";
        return c;
    }
    Result<std::unique_ptr<Drive>> try_open(const DriveConfig& c)
    {
        return loop->run_until_complete(Drive::open(*ctx, c));
    }
};

TEST_F(DriveTest, MissingFileIsQemusMessage)
{
    auto r = try_open(raw_cfg(path("nope.img")));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Could not open '" + path("nope.img") + "': No such file or directory");
}

TEST_F(DriveTest, SecondWriterIsRefused)
{
    std::string img = make_raw("a.img", 1 << 20);
    Drive* first = open_drive(raw_cfg(img));
    ASSERT_NE(first, nullptr);
    auto second = try_open(raw_cfg(img));
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message().find("Failed to get \"write\" lock"), std::string::npos)
        << second.error().message();
    EXPECT_NE(second.error().message().find("Is another process using the image [" + img + "]?"), std::string::npos)
        << second.error().message();
}

TEST_F(DriveTest, QemuIoCannotWriteWhileKilnHoldsTheImage)
{
    if (std::system("command -v qemu-io >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "qemu-io not installed";
    std::string img = make_raw("a.img", 1 << 20);
    ASSERT_NE(open_drive(raw_cfg(img)), nullptr);
    std::string cmd = "qemu-io -f raw -c 'write 0 512' '" + img + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[256];
    while (fgets(buf, sizeof buf, p))
        out += buf;
    int status = pclose(p);
    EXPECT_NE(WEXITSTATUS(status), 0) << out;
    EXPECT_NE(out.find("Failed to get \"write\" lock"), std::string::npos) << out;
}

TEST_F(DriveTest, BackingFileOfAGuestDiskCannotBeWrittenByAnotherProcess)
{
    // BlockBackend::apply_device_sharing narrows the whole chain: the qcow2
    // file and its backing file refuse a second writer, as with QEMU.
    if (std::system("command -v qemu-img >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "qemu-img not installed";
    std::string base = make_raw("base.raw", 1 << 20);
    std::string top = path("top.qcow2");
    std::string mk = "qemu-img create -q -f qcow2 -F raw -b '" + base + "' '" + top + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(mk.c_str()), 0);
    DriveConfig c = raw_cfg(top);
    c.format = "qcow2";
    ASSERT_NE(open_drive(c), nullptr);
    for (const std::string& img : { base, top }) {
        auto second = try_open(raw_cfg(img));
        ASSERT_FALSE(second.ok()) << img;
        EXPECT_NE(second.error().message().find("Failed to get \"write\" lock"), std::string::npos)
            << second.error().message();
    }
}

TEST_F(DriveTest, SnapshotOverlayKeepsTheImageAndLeavesNothingBehind)
{
    setenv("TMPDIR", m_dir.c_str(), 1);
    std::string img = make_raw("base.img", 1 << 20);
    DriveConfig c = raw_cfg(img);
    c.format = "";
    c.snapshot = true;
    Drive* d = open_drive(c);
    ASSERT_NE(d, nullptr);
    unsetenv("TMPDIR");
    EXPECT_EQ(d->backend()->root()->driver_name(), "qcow2");
    EXPECT_FALSE(d->read_only());
    // The overlay was unlinked as soon as it was open.
    for (auto& e : std::filesystem::directory_iterator(m_dir))
        EXPECT_EQ(e.path().filename().string().find("kiln-snapshot"), std::string::npos) << e.path();
    std::vector<uint8_t> buf(4096, 0xee);
    ASSERT_TRUE(loop->run_until_complete(d->write(8192, block::QIov(buf.data(), buf.size()))).ok());
    std::vector<uint8_t> back(4096);
    ASSERT_TRUE(loop->run_until_complete(d->read(8192, block::QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, buf);
    ASSERT_TRUE(loop->run_until_complete(d->read(0, block::QIov(back.data(), 512))).ok());
    EXPECT_EQ(back[1], pattern(1)); // unwritten parts come from the base
    // The base image is untouched.
    std::ifstream in(img, std::ios::binary);
    in.seekg(8192);
    EXPECT_EQ(uint8_t(in.get()), pattern(8192));
}

// The overlay is a throw-away file (cache=unsafe), but the user's image
// below it keeps the drive's cache mode: a monitor `commit` into it must
// really reach the disk.
TEST_F(DriveTest, SnapshotOverlayBaseKeepsTheDrivesCacheMode)
{
    std::string img = make_raw("base.img", 1 << 20);
    DriveConfig c = raw_cfg(img);
    c.snapshot = true;
    c.cache = block::CacheMode::Writeback;
    Drive* d = open_drive(c);
    ASSERT_NE(d, nullptr);
    block::BlockNode* base = d->backend()->root()->backing();
    ASSERT_NE(base, nullptr);
    auto* file = dynamic_cast<block::FileNode*>(base->file() ? base->file() : base);
    ASSERT_NE(file, nullptr);
    // As `commit` does: reopen the base read-write, write, flush.
    ASSERT_TRUE(loop->run_until_complete(base->reopen(true)).ok());
    uint64_t before = file->host_flushes();
    ASSERT_TRUE(loop->run_until_complete(base->flush()).ok());
    EXPECT_GT(file->host_flushes(), before);
    ASSERT_TRUE(loop->run_until_complete(base->reopen(false)).ok());
    // The overlay itself still skips flushes.
    auto* top = dynamic_cast<block::FileNode*>(d->backend()->root()->file());
    ASSERT_NE(top, nullptr);
    before = top->host_flushes();
    ASSERT_TRUE(loop->run_until_complete(d->backend()->root()->flush()).ok());
    EXPECT_EQ(top->host_flushes(), before);
}

TEST_F(DriveTest, UnknownOptionNamesTheFormat)
{
    DriveConfig c = raw_cfg(make_raw("a.img", 4096));
    c.block_options.set("foo", "bar");
    auto r = try_open(c);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Block format 'raw' does not support the option 'foo'");
    // The image is not left locked by the failed open.
    c.block_options = {};
    EXPECT_TRUE(try_open(c).ok());
}

TEST_F(DriveTest, DetectZeroesAndDiscardPolicies)
{
    DriveConfig c = raw_cfg(make_raw("a.img", 1 << 20));
    c.detect_zeroes = DetectZeroes::On;
    Drive* d = open_drive(c);
    std::vector<uint8_t> zero(4096, 0);
    ASSERT_TRUE(loop->run_until_complete(d->write(0, block::QIov(zero.data(), zero.size()))).ok());
    EXPECT_EQ(d->backend()->stats().zero_operations, 1u);
    // discard=ignore (the default): accepted, nothing reaches the image.
    ASSERT_TRUE(loop->run_until_complete(d->discard(0, 4096)).ok());
    EXPECT_EQ(d->backend()->stats().unmap_operations, 0u);
}

TEST_F(DriveTest, ErrorPolicies)
{
    auto mk = [&](BlockErrorAction w) {
        DriveConfig c;
        c.id = "p";
        c.werror = w;
        auto d = Drive::from_node(*ctx, c, std::make_unique<block::test::MemNode>(*ctx, std::vector<uint8_t>(4096)));
        d->set_error_host(this);
        return d;
    };
    Error enospc = Error::from_errno(ENOSPC, "write");
    Error eio = Error::from_errno(EIO, "write");
    EXPECT_EQ(mk(BlockErrorAction::Report)->handle_error(IoDirection::Write, enospc, [] {}), ErrorOutcome::Report);
    EXPECT_EQ(mk(BlockErrorAction::Ignore)->handle_error(IoDirection::Write, eio, [] {}), ErrorOutcome::Ignore);
    EXPECT_EQ(mk(BlockErrorAction::StopOnEnospc)->handle_error(IoDirection::Write, eio, [] {}), ErrorOutcome::Report);
    auto d = mk(BlockErrorAction::StopOnEnospc);
    int retried = 0;
    EXPECT_EQ(d->handle_error(IoDirection::Write, enospc, [&] { retried++; }), ErrorOutcome::Stopped);
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_NE(stops[0].find("drive 'p': write error"), std::string::npos) << stops[0];
    // A second request failing while stopped is kept without a second message.
    EXPECT_EQ(d->handle_error(IoDirection::Write, enospc, [&] { retried++; }), ErrorOutcome::Stopped);
    EXPECT_EQ(stops.size(), 1u);
    d->resume();
    EXPECT_EQ(retried, 2);
    d->resume();
    EXPECT_EQ(retried, 2);
    // Read errors follow rerror (default report).
    EXPECT_EQ(d->handle_error(IoDirection::Read, enospc, [] {}), ErrorOutcome::Report);
    // Every error the guest sees, or that is ignored, is announced too.
    std::vector<std::string> expect = { "p write report nospace", "p write ignore", "p write report",
        "p read report nospace" };
    EXPECT_EQ(passed, expect);
}

TEST_F(DriveTest, EmptyCdromChangesMedium)
{
    DriveConfig c;
    c.id = "cd";
    c.media = DriveMedia::Cdrom;
    c.read_only = true;
    Drive* d = open_drive(c);
    EXPECT_FALSE(d->has_medium());
    unsigned gen = d->medium_generation();
    std::string iso = make_raw("x.iso", 2048 * 4);
    ASSERT_TRUE(loop->run_until_complete(d->change_medium(iso, "raw")).ok());
    EXPECT_TRUE(d->has_medium());
    EXPECT_TRUE(d->read_only());
    EXPECT_GT(d->medium_generation(), gen);
    ASSERT_TRUE(loop->run_until_complete(d->eject()).ok());
    EXPECT_FALSE(d->has_medium());
}

} // namespace
} // namespace kiln::hw::test
