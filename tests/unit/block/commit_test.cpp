// Live commit into a backing file (block/commit.h) and the reopen it uses:
// a qcow2 over a raw backing, opened as a guest drive opens it (backing
// read-only, device sharing locks), committed while open; the backing file
// holds the data afterwards, the top reads the same and is empty, and
// qemu-img check is clean. A conflicting lock from another open file
// makes the commit fail with EACCES and leaves both images as they were.
#include <fcntl.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "block/backend.h"
#include "block/commit.h"
#include "block/file/file_node.h"
#include "tests/unit/block/block_fixture.h"
#include "tests/unit/block/host_helpers.h"
#include "tests/unit/qcow2/bitmap_parse.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

constexpr uint64_t k_mib = 1 << 20;

Task<void> sleep_ms(EventLoop& loop, uint64_t ms) { co_await loop.sleep_ns(ms * 1'000'000); }

std::vector<uint8_t> file_bytes(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

class CommitTest : public BlockFixture {
protected:
    // base.raw (4 MiB pattern) under top.qcow2 of `top_bytes`.
    void make_chain(uint64_t top_bytes)
    {
        make_file(path("base.raw"), 4 * k_mib);
        auto [rc, out] = run_command("qemu-img create -q -f qcow2 -b base.raw -F raw " + path("top.qcow2") + " "
                                     + std::to_string(top_bytes));
        ASSERT_EQ(rc, 0) << out;
    }
    // Opened as a guest drive opens it: the backing read-only, locks narrowed.
    std::unique_ptr<BlockBackend> open_drive()
    {
        ImageSpec spec{ path("top.qcow2"), "qcow2", {}, rw_flags() };
        auto node = run(m_ctx->open_image(spec));
        EXPECT_TRUE(node.ok()) << (node.ok() ? "" : node.error().message());
        if (!node.ok())
            return nullptr;
        auto blk = std::make_unique<BlockBackend>(*m_loop, std::move(node).value(), BackendAccess::ReadWrite);
        EXPECT_TRUE(blk->apply_device_sharing(BlockBackend::ShareWrite::No).ok());
        return blk;
    }
    std::vector<uint8_t> read(BlockBackend& blk, uint64_t off, uint64_t bytes)
    {
        std::vector<uint8_t> buf(bytes);
        auto r = run(blk.read(off, QIov(buf.data(), bytes)));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        return buf;
    }
    void write(BlockBackend& blk, uint64_t off, uint64_t bytes, uint8_t byte)
    {
        std::vector<uint8_t> buf(bytes, byte);
        auto r = run(blk.write(off, QIov(buf.data(), bytes)));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }
    void expect_check_clean(const std::string& p, const char* fmt)
    {
        auto [rc, out] = run_command(std::string("qemu-img check -f ") + fmt + " " + p);
        EXPECT_EQ(rc, 0) << p << ": " << out;
    }
};

TEST_F(CommitTest, FileNodeReopenTakesAndDropsTheWriteLock)
{
    make_file(path("f.raw"), 64 * 1024);
    OpenFlags ro;
    auto node = open_file(path("f.raw"), ro);
    ASSERT_TRUE(node);
    auto* file = dynamic_cast<FileNode*>(node.get());
    ASSERT_TRUE(file);
    EXPECT_FALSE(byte_locked(path("f.raw"), 101));
    ASSERT_TRUE(run(node->reopen(true)).ok());
    EXPECT_FALSE(node->read_only());
    EXPECT_TRUE(byte_locked(path("f.raw"), 101)); // 100 + write
    std::vector<uint8_t> buf(4096, 0x5a);
    ASSERT_TRUE(run(node->pwritev(0, QIov(buf.data(), buf.size()), RequestFlags::None)).ok());
    ASSERT_TRUE(run(node->reopen(false)).ok());
    EXPECT_TRUE(node->read_only());
    EXPECT_FALSE(byte_locked(path("f.raw"), 101));
    EXPECT_TRUE(byte_locked(path("f.raw"), 100)); // still reading
    EXPECT_FALSE(run(node->pwritev(0, QIov(buf.data(), buf.size()), RequestFlags::None)).ok());
    EXPECT_EQ(file_bytes(path("f.raw"))[100], 0x5a);
    (void)run(node->close());
}

TEST_F(CommitTest, ReopenFailsWithQemusLockMessageWhenAnotherOpenRefusesWriters)
{
    make_file(path("f.raw"), 64 * 1024);
    auto node = open_file(path("f.raw"), OpenFlags{});
    ASSERT_TRUE(node);
    // Another open file refusing writers: byte 200 + write, as qemu-io -r holds.
    int other = hold_lock_byte(path("f.raw"), 201);
    ASSERT_GE(other, 0);
    auto r = run(node->reopen(true));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("Failed to get \"write\" lock"), std::string::npos) << r.error().message();
    EXPECT_TRUE(node->read_only());
    EXPECT_TRUE(byte_locked(path("f.raw"), 100)); // the read lock is back
    ::close(other);
    EXPECT_TRUE(run(node->reopen(true)).ok());
    (void)run(node->close());
}

TEST_F(CommitTest, CommitWritesTheTopIntoTheBackingAndEmptiesTheTop)
{
    make_chain(6 * k_mib); // larger than the backing: the backing grows
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    write(*blk, 64 * 1024, 128 * 1024, 0xab);
    ASSERT_TRUE(run(blk->write_zeroes(2 * k_mib, 256 * 1024)).ok());
    write(*blk, 5 * k_mib, 4096, 0xcd);
    std::vector<uint8_t> before = read(*blk, 0, 6 * k_mib);

    BlockNode* top = blk->root();
    BlockNode* base = top->backing();
    ASSERT_TRUE(base->read_only());
    auto r = run(commit_into_backing(*top));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_TRUE(base->read_only());
    EXPECT_FALSE(byte_locked(path("base.raw"), 101)); // write given back
    EXPECT_TRUE(byte_locked(path("base.raw"), 201));  // still refused to others
    EXPECT_EQ(read(*blk, 0, 6 * k_mib), before);
    auto st = run(top->block_status(0, 6 * k_mib));
    ASSERT_TRUE(st.ok());
    EXPECT_FALSE(st.value().flags & BlockStatus::Allocated);
    EXPECT_EQ(st.value().bytes, 6 * k_mib);
    ASSERT_TRUE(run(blk->close()).ok());

    std::vector<uint8_t> base_bytes = file_bytes(path("base.raw"));
    ASSERT_EQ(base_bytes.size(), 6 * k_mib);
    EXPECT_EQ(base_bytes, before);
    EXPECT_EQ(base_bytes[64 * 1024], 0xab);
    EXPECT_EQ(base_bytes[2 * k_mib + 1], 0);
    EXPECT_EQ(base_bytes[0], pattern(0));
    expect_check_clean(path("top.qcow2"), "qcow2");
    auto [rc, out] = run_command("qemu-img compare -f qcow2 -F raw " + path("top.qcow2") + " " + path("base.raw"));
    EXPECT_EQ(rc, 0) << out;
    auto [mrc, map] = run_command("qemu-img map --output=json -f qcow2 " + path("top.qcow2"));
    EXPECT_EQ(map.find("\"depth\": 0"), std::string::npos) << map; // nothing left in the top
}

TEST_F(CommitTest, CommitIntoAQcow2Backing)
{
    auto [rc0, out0] = run_command("qemu-img create -q -f qcow2 " + path("base.qcow2") +  " 2M && qemu-io -f qcow2 -c "
                                   "'write -P 0x11 0 1M' " + path("base.qcow2")
                                   + " && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + path("top.qcow2"));
    ASSERT_EQ(rc0, 0) << out0;
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    write(*blk, 512 * 1024, 1 * k_mib, 0x22);
    ASSERT_TRUE(run(commit_into_backing(*blk->root())).ok());
    EXPECT_TRUE(blk->root()->backing()->read_only());
    ASSERT_TRUE(run(blk->close()).ok());
    expect_check_clean(path("base.qcow2"), "qcow2");
    expect_check_clean(path("top.qcow2"), "qcow2");
    auto [rc, out] = run_command("qemu-io -c 'read -P 0x11 0 512k' -c 'read -P 0x22 512k 1M' -c 'read -P 0 1536k 512k' "
                                 "-f qcow2 " + path("base.qcow2"));
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(out.find("Pattern verification failed"), std::string::npos) << out;
}

TEST_F(CommitTest, Qcow2BackingPersistentBitmapsRecordTheCommit)
{
    // The backing file's bitmaps are loaded and tracked while it is
    // read-write (as a read-write open does) and stored when it goes back.
    auto [rc0, out0] = run_command("qemu-img create -q -f qcow2 " + path("base.qcow2") + " 1M && qemu-img bitmap "
                                   "--add " + path("base.qcow2") + " b0 && qemu-img create -q -f qcow2 -b base.qcow2 "
                                   "-F qcow2 " + path("top.qcow2"));
    ASSERT_EQ(rc0, 0) << out0;
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    write(*blk, 0, 65536, 0x33);
    ASSERT_TRUE(run(commit_into_backing(*blk->root())).ok());
    EXPECT_TRUE(blk->root()->backing()->read_only());
    ASSERT_TRUE(run(blk->close()).ok());
    expect_check_clean(path("base.qcow2"), "qcow2");
    std::ifstream in(path("base.qcow2"), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto bitmaps = parse_bitmaps(bytes, 65536);
    ASSERT_EQ(bitmaps.size(), 1u);
    EXPECT_EQ(bitmaps[0].flags, 2u); // enabled, no longer in use
    EXPECT_EQ(bitmaps[0].set_bits, std::set<uint64_t>({0}));
}

TEST_F(CommitTest, ConflictingLockFailsWithEaccesAndChangesNothing)
{
    make_chain(4 * k_mib);
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    write(*blk, 0, 64 * 1024, 0xee);
    int other = hold_lock_byte(path("base.raw"), 201);
    ASSERT_GE(other, 0);
    auto r = run(commit_into_backing(*blk->root()));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), EACCES);
    EXPECT_TRUE(blk->root()->backing()->read_only());
    EXPECT_EQ(read(*blk, 0, 1)[0], 0xee);
    EXPECT_EQ(file_bytes(path("base.raw"))[0], pattern(0));
    ::close(other);

    auto ok_again = run(commit_into_backing(*blk->root()));
    EXPECT_TRUE(ok_again.ok());
    EXPECT_EQ(file_bytes(path("base.raw"))[0], 0xee);
    ASSERT_TRUE(run(blk->close()).ok());
}

TEST_F(CommitTest, QuiesceHoldsNewRequestsUntilEndQuiesce)
{
    make_chain(4 * k_mib);
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    run(blk->quiesce());
    std::vector<uint8_t> buf(4096, 0x77);
    bool done = false;
    spawn([](BlockBackend* b, std::vector<uint8_t>* data, bool* finished) -> Task<void> {
        auto r = co_await b->write(0, QIov(data->data(), data->size()));
        EXPECT_TRUE(r.ok());
        *finished = true;
    }(blk.get(), &buf, &done));
    // The loop runs a while: the write stays held, nothing is in flight.
    run(sleep_ms(*m_loop, 20));
    EXPECT_FALSE(done);
    EXPECT_EQ(blk->in_flight(), 0);
    blk->end_quiesce();
    for (int i = 0; i < 500 && !done; ++i)
        run(sleep_ms(*m_loop, 1));
    EXPECT_TRUE(done);
    EXPECT_EQ(read(*blk, 0, 1)[0], 0x77);
    ASSERT_TRUE(run(blk->close()).ok());
}

TEST_F(CommitTest, NoBackingIsNotSupported)
{
    auto [rc, out] = run_command("qemu-img create -q -f qcow2 " + path("top.qcow2") + " 1M");
    ASSERT_EQ(rc, 0) << out;
    auto blk = open_drive();
    ASSERT_TRUE(blk);
    auto r = run(commit_into_backing(*blk->root()));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), ENOTSUP);
    ASSERT_TRUE(run(blk->close()).ok());
}

} // namespace
