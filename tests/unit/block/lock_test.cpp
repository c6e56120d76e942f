// Image locking: Kiln against itself (two opens in one process conflict
// through OFD locks as two processes do) and against the real qemu-io and
// qemu-img.
#include <fcntl.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include <sys/prctl.h>
#include <sys/wait.h>

#include "block/backend.h"
#include "block/file/file_node.h"
#include "block/file/lock.h"
#include "tests/unit/block/block_fixture.h"
#include "tests/unit/block/host_helpers.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

bool have_tool(const char* name)
{
    std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

// A qemu-io session holding an image open, fed commands on stdin; killed
// and reaped by the destructor whatever the test's outcome.
class QemuIoHolder {
public:
    QemuIoHolder(std::vector<std::string> args)
    {
        int fds[2];
        if (pipe(fds) != 0)
            return;
        m_pid = fork();
        if (m_pid == 0) {
            // Dies with the test even if the test process crashes.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            dup2(fds[0], 0);
            int null_fd = ::open("/dev/null", O_WRONLY);
            dup2(null_fd, 1);
            ::close(fds[1]);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>("qemu-io"));
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            execvp("qemu-io", argv.data());
            _exit(127);
        }
        ::close(fds[0]);
        m_stdin = fds[1];
    }
    ~QemuIoHolder()
    {
        if (m_stdin >= 0)
            ::close(m_stdin);
        if (m_pid > 0) {
            kill(m_pid, SIGKILL);
            waitpid(m_pid, nullptr, 0);
        }
    }
    // Waits (up to 10 s) until the image's byte is locked by qemu-io.
    bool wait_for_lock(const std::string& path, int byte)
    {
        for (int i = 0; i < 1000; ++i) {
            if (byte_locked(path, byte))
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

private:
    pid_t m_pid = -1;
    int m_stdin = -1;
};

class LockTest : public BlockFixture {
protected:
    FileNode* as_file(BlockNode* node) { return dynamic_cast<FileNode*>(node); }

    // A fresh 1 MiB raw image opened read-write into a backend.
    std::unique_ptr<BlockBackend> raw_device_backend(const std::string& p)
    {
        make_file(p, 1 << 20);
        auto node = run(m_ctx->open_image({ p, "raw", {}, rw_flags() }));
        if (!node)
            return nullptr;
        return std::make_unique<BlockBackend>(*m_loop, std::move(node).value(), BackendAccess::ReadWrite);
    }
};

TEST_F(LockTest, TakesQemuByteLayout)
{
    make_file(path("a.img"), 65536);
    OpenFlags flags;
    flags.read_write = true;
    auto node = open_file(path("a.img"), flags);
    ASSERT_TRUE(node);
    // A bare rw open, as qemu-io on a raw image: bytes 100 and 101 only.
    EXPECT_TRUE(byte_locked(path("a.img"), 100));
    EXPECT_TRUE(byte_locked(path("a.img"), 101));
    for (int b : { 102, 103, 104, 200, 201, 202, 203, 204 })
        EXPECT_FALSE(byte_locked(path("a.img"), b)) << b;
    // As a qcow2 file child: + resize, and write/resize unshared.
    ASSERT_TRUE(as_file(node.get())
                    ->set_permissions(k_perm_consistent_read | k_perm_write | k_perm_resize,
                        k_perm_all & ~uint64_t(k_perm_write | k_perm_resize))
                    .ok());
    for (int b : { 100, 101, 103, 201, 203 })
        EXPECT_TRUE(byte_locked(path("a.img"), b)) << b;
    for (int b : { 102, 104, 200, 202, 204 })
        EXPECT_FALSE(byte_locked(path("a.img"), b)) << b;
    node.reset();
    EXPECT_FALSE(byte_locked(path("a.img"), 100));
}

TEST_F(LockTest, ConflictingOpensInOneProcess)
{
    make_file(path("a.img"), 65536);
    OpenFlags rw;
    rw.read_write = true;
    auto holder = open_file(path("a.img"), rw);
    ASSERT_TRUE(holder);
    ASSERT_TRUE(as_file(holder.get())
                    ->set_permissions(k_perm_consistent_read | k_perm_write, k_perm_all & ~uint64_t(k_perm_write))
                    .ok());
    // A reader that does not share write cannot open.
    auto reader = run(m_ctx->open_file(path("a.img"), {}, OpenFlags {}));
    ASSERT_TRUE(reader.ok());
    auto r
        = as_file(reader.value().get())->set_permissions(k_perm_consistent_read, k_perm_all & ~uint64_t(k_perm_write));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::Locked);
    EXPECT_EQ(r.error().message(),
        "Failed to get shared \"write\" lock\nIs another process using the image [" + path("a.img") + "]?");
    // The failed change left the reader's earlier state in force.
    EXPECT_EQ(as_file(reader.value().get())->shared_permissions(), uint64_t(k_perm_all));
    // A second writer fails on the holder's unshared write.
    auto writer = run(m_ctx->open_file(path("a.img"), {}, rw));
    ASSERT_FALSE(writer.ok());
    EXPECT_EQ(writer.error().message(),
        "Failed to get \"write\" lock\nIs another process using the image [" + path("a.img") + "]?");
    // locking=off skips all of it.
    auto unlocked = run(m_ctx->open_file(path("a.img"), OptionList::parse("locking=off").value(), rw));
    EXPECT_TRUE(unlocked.ok());
}

TEST_F(LockTest, ForceShareNeedsReadOnly)
{
    make_file(path("a.img"), 4096);
    OpenFlags flags;
    flags.read_write = true;
    flags.force_share = true;
    auto r = run(m_ctx->open_file(path("a.img"), {}, flags));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "force-share=on can only be used with read-only images");
}

TEST_F(LockTest, QemuIoHoldingQcow2BlocksKiln)
{
    if (!have_tool("qemu-io") || !have_tool("qemu-img"))
        GTEST_SKIP() << "qemu-io/qemu-img not installed";
    std::string img = path("q.qcow2");
    ASSERT_EQ(run_command("qemu-img create -f qcow2 " + img + " 1M").first, 0);
    QemuIoHolder holder({ "-f", "qcow2", img });
    ASSERT_TRUE(holder.wait_for_lock(img, 201)) << "qemu-io did not lock the image";

    std::string hint = "\nIs another process using the image [" + img + "]?";
    OpenFlags rw;
    rw.read_write = true;
    auto r = run(m_ctx->open_image({ img, "qcow2", {}, rw }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::Locked);
    EXPECT_EQ(r.error().message(), "Failed to get \"write\" lock" + hint);

    r = run(m_ctx->open_image({ img, "qcow2", {}, OpenFlags {} }));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Failed to get shared \"write\" lock" + hint);

    // -U: the lock does not stand in the way (whatever the driver says).
    OpenFlags shared;
    shared.force_share = true;
    r = run(m_ctx->open_image({ img, "qcow2", {}, shared }));
    if (!r.ok()) {
        EXPECT_NE(r.error().kind(), ErrorKind::Locked) << r.error().message();
    }
    // Probing needs no lock.
    EXPECT_TRUE(run(m_ctx->probe_format(img, OpenFlags {})).ok());
    // Creating over an image in use fails before touching it.
    auto size_before = std::filesystem::file_size(img);
    auto c = run(m_ctx->create_image("raw", img, 4096, {}));
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message(), "Failed to get \"write\" lock" + hint);
    EXPECT_EQ(std::filesystem::file_size(img), size_before);
}

TEST_F(LockTest, QemuIoHoldingRawSharesEverything)
{
    if (!have_tool("qemu-io"))
        GTEST_SKIP() << "qemu-io not installed";
    std::string img = path("r.img");
    make_file(img, 1 << 20);
    QemuIoHolder holder({ "-f", "raw", img });
    ASSERT_TRUE(holder.wait_for_lock(img, 101));
    // QEMU's raw driver shares write, so a raw rw open succeeds as it does
    // for a second qemu-io.
    OpenFlags rw;
    rw.read_write = true;
    auto r = run(m_ctx->open_image({ img, "raw", {}, rw }));
    EXPECT_TRUE(r.ok()) << r.error().message();
}

TEST_F(LockTest, KilnHoldingImageBlocksQemuImg)
{
    if (!have_tool("qemu-img"))
        GTEST_SKIP() << "qemu-img not installed";
    std::string img = path("k.qcow2");
    ASSERT_EQ(run_command("qemu-img create -f qcow2 " + img + " 1M").first, 0);
    OpenFlags rw;
    rw.read_write = true;
    auto holder = open_file(img, rw);
    ASSERT_TRUE(holder);
    // Hold it as a qcow2 file child would (write and resize unshared).
    ASSERT_TRUE(as_file(holder.get())
                    ->set_permissions(k_perm_consistent_read | k_perm_write | k_perm_resize,
                        k_perm_all & ~uint64_t(k_perm_write | k_perm_resize))
                    .ok());
    auto [status, out] = run_command("qemu-img info " + img);
    EXPECT_NE(status, 0);
    EXPECT_NE(out.find("Failed to get shared \"write\" lock"), std::string::npos) << out;
    EXPECT_NE(out.find("Is another process using the image [" + img + "]?"), std::string::npos) << out;
    auto [status_u, out_u] = run_command("qemu-img info -U " + img);
    EXPECT_EQ(status_u, 0) << out_u;
    EXPECT_NE(out_u.find("virtual size: 1 MiB"), std::string::npos) << out_u;
    auto [status_w, out_w] = run_command("qemu-io -c 'write 0 512' " + img);
    EXPECT_NE(out_w.find("Failed to get \"write\" lock"), std::string::npos) << out_w;
    holder.reset();
    auto [status_after, out_after] = run_command("qemu-img info " + img);
    EXPECT_EQ(status_after, 0) << out_after;
}

TEST_F(LockTest, DeviceBackendRefusesOtherWritersLikeQemuSystem)
{
    // What qemu-system holds for a raw disk on a device: 100, 101 / 201;
    // for a raw backing file under qcow2: 100 / 201, 203.
    auto backend = raw_device_backend(path("d.raw"));
    ASSERT_TRUE(backend);
    BlockBackend& blk = *backend;
    EXPECT_FALSE(byte_locked(path("d.raw"), 201));
    ASSERT_TRUE(blk.apply_device_sharing(BlockBackend::ShareWrite::No).ok());
    EXPECT_TRUE(byte_locked(path("d.raw"), 100));
    EXPECT_TRUE(byte_locked(path("d.raw"), 101));
    EXPECT_TRUE(byte_locked(path("d.raw"), 201));
    EXPECT_FALSE(byte_locked(path("d.raw"), 203));
    // Another writer (a tool, here a second open in this process) fails.
    auto other = run(m_ctx->open_image({ path("d.raw"), "raw", {}, rw_flags() }));
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.error().kind(), ErrorKind::Locked);
    // Readers are fine.
    EXPECT_TRUE(run(m_ctx->open_image({ path("d.raw"), "raw", {}, OpenFlags {} })).ok());
    if (have_tool("qemu-io")) {
        auto [status, out] = run_command("qemu-io -f raw -c 'write 0 512' " + path("d.raw"));
        EXPECT_NE(out.find("Failed to get \"write\" lock"), std::string::npos) << out;
        auto [rstatus, rout] = run_command("qemu-io -r -f raw -c 'read 0 512' " + path("d.raw"));
        EXPECT_EQ(rstatus, 0) << rout;
    }
}

TEST_F(LockTest, DeviceWithShareRwLetsWritersIn)
{
    auto backend = raw_device_backend(path("d.raw"));
    ASSERT_TRUE(backend);
    BlockBackend& blk = *backend;
    ASSERT_TRUE(blk.apply_device_sharing(BlockBackend::ShareWrite::Yes).ok());
    EXPECT_FALSE(byte_locked(path("d.raw"), 201));
    EXPECT_TRUE(run(m_ctx->open_image({ path("d.raw"), "raw", {}, rw_flags() })).ok());
}

TEST_F(LockTest, DeviceSharingFailsWhenSomeoneWrites)
{
    make_file(path("d.raw"), 1 << 20);
    OpenFlags rw;
    rw.read_write = true;
    auto writer = open_file(path("d.raw"), rw);
    ASSERT_TRUE(writer);
    auto node = run(m_ctx->open_image({ path("d.raw"), "raw", {}, rw }));
    ASSERT_TRUE(node.ok());
    BlockBackend blk(*m_loop, std::move(node).value(), BackendAccess::ReadWrite);
    auto r = blk.apply_device_sharing(BlockBackend::ShareWrite::No);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
        "Failed to get shared \"write\" lock\nIs another process using the image [" + path("d.raw") + "]?");
}

TEST_F(LockTest, KilnQcow2OpenBlocksQemuTools)
{
    if (!have_tool("qemu-img") || !have_tool("qemu-io"))
        GTEST_SKIP() << "qemu-img/qemu-io not installed";
    std::string img = path("open.qcow2");
    ASSERT_EQ(run_command("qemu-img create -f qcow2 " + img + " 1M").first, 0);
    auto node = run(m_ctx->open_image({ img, "qcow2", {}, rw_flags() }));
    if (!node.ok() && node.error().kind() == ErrorKind::NotSupported)
        GTEST_SKIP() << "qcow2 driver not in this build: " << node.error().message();
    ASSERT_TRUE(node.ok()) << node.error().message();
    EXPECT_EQ(node.value()->driver_name(), "qcow2");
    auto [status, out] = run_command("qemu-img info " + img);
    EXPECT_NE(status, 0);
    EXPECT_NE(out.find("Could not open '" + img + "': Failed to get shared \"write\" lock"), std::string::npos) << out;
    auto [status_u, out_u] = run_command("qemu-img info -U " + img);
    EXPECT_EQ(status_u, 0) << out_u;
    auto [status_w, out_w] = run_command("qemu-io -c 'read 0 512' " + img);
    EXPECT_NE(out_w.find("Failed to get \"write\" lock"), std::string::npos) << out_w;
    ASSERT_TRUE(run(node.value()->close()).ok());
    node.value().reset();
    EXPECT_EQ(run_command("qemu-img check " + img).first, 0);
}

} // namespace
