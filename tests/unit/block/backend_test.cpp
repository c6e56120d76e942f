#include "block/backend.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

class BackendTest : public BlockFixture {
protected:
    std::unique_ptr<BlockBackend> open_backend(BackendAccess access)
    {
        make_file(path("a.img"), 1 << 20);
        OpenFlags flags;
        flags.read_write = access == BackendAccess::ReadWrite;
        auto node = run(m_ctx->open_image({ path("a.img"), "raw", {}, flags }));
        EXPECT_TRUE(node.ok());
        return std::make_unique<BlockBackend>(*m_loop, std::move(node).value(), access);
    }
};

TEST_F(BackendTest, ChecksBoundsAndCountsStats)
{
    auto blk = open_backend(BackendAccess::ReadWrite);
    EXPECT_EQ(blk->size_bytes(), 1u << 20);
    std::vector<uint8_t> buf(4096, 0x33);
    ASSERT_TRUE(run(blk->write(0, QIov(buf.data(), buf.size()))).ok());
    ASSERT_TRUE(run(blk->write(8192, QIov(buf.data(), 512))).ok());
    ASSERT_TRUE(run(blk->read(0, QIov(buf.data(), 1024))).ok());
    ASSERT_TRUE(run(blk->flush()).ok());
    ASSERT_TRUE(run(blk->discard(65536, 65536)).ok());
    ASSERT_TRUE(run(blk->write_zeroes(0, 4096)).ok());
    auto past = run(blk->read((1 << 20) - 100, QIov(buf.data(), 200)));
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_FALSE(run(blk->write(UINT64_MAX - 10, QIov(buf.data(), 200))).ok());

    const auto& s = blk->stats();
    EXPECT_EQ(s.wr_operations, 3u);
    EXPECT_EQ(s.wr_bytes, 4096u + 512 + 4096);
    EXPECT_EQ(s.zero_operations, 1u);
    EXPECT_EQ(s.rd_operations, 1u);
    EXPECT_EQ(s.rd_bytes, 1024u);
    EXPECT_EQ(s.flush_operations, 1u);
    EXPECT_EQ(s.unmap_operations, 1u);
    EXPECT_EQ(s.unmap_bytes, 65536u);
    EXPECT_EQ(s.invalid_rd_operations, 1u);
    EXPECT_EQ(s.invalid_wr_operations, 1u);
    EXPECT_GT(s.wr_total_time_ns, 0u);
    blk->reset_stats();
    EXPECT_EQ(blk->stats().wr_operations, 0u);
    ASSERT_TRUE(run(blk->close()).ok());
    EXPECT_EQ(blk->root(), nullptr);
    EXPECT_FALSE(run(blk->read(0, QIov(buf.data(), 1))).ok());
}

TEST_F(BackendTest, ReadOnlyBackendRejectsWrites)
{
    auto blk = open_backend(BackendAccess::ReadOnly);
    EXPECT_TRUE(blk->read_only());
    uint8_t b = 0;
    auto r = run(blk->write(0, QIov(&b, 1)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::PermissionDenied);
    EXPECT_EQ(r.error().message(), "Block node is read-only");
    EXPECT_FALSE(run(blk->write_zeroes(0, 512)).ok());
    EXPECT_FALSE(run(blk->discard(0, 512)).ok());
    EXPECT_TRUE(run(blk->read(0, QIov(&b, 1))).ok());
}

TEST_F(BackendTest, DrainWaitsForRequestsInFlight)
{
    auto blk = open_backend(BackendAccess::ReadWrite);
    constexpr int k_requests = 64;
    std::vector<std::vector<uint8_t>> bufs(k_requests, std::vector<uint8_t>(4096, 1));
    int completed = 0;
    int seen_at_drain = -1;
    auto one = [&](int i) -> Task<void> {
        auto r = co_await blk->write(uint64_t(i) * 4096, QIov(bufs[size_t(i)].data(), 4096));
        EXPECT_TRUE(r.ok());
        ++completed;
    };
    auto main_task = [&]() -> Task<void> {
        for (int i = 0; i < k_requests; ++i)
            spawn(one(i));
        EXPECT_GT(blk->in_flight(), 0);
        co_await blk->drain();
        seen_at_drain = completed;
    };
    run(main_task());
    EXPECT_EQ(seen_at_drain, k_requests);
    EXPECT_EQ(blk->in_flight(), 0);
}
