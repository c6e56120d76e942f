// The file protocol node, run for each engine and for buffered and
// O_DIRECT I/O.
#include <fcntl.h>

#include <vector>

#include "block/file/file_node.h"
#include "tests/unit/block/block_fixture.h"
#include "util/co_sync.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

struct Mode {
    AioEngine engine;
    CacheMode cache;
};

std::string mode_name(const testing::TestParamInfo<Mode>& info)
{
    std::string cache = info.param.cache == CacheMode::None ? "direct" : "buffered";
    return std::string(aio_engine_name(info.param.engine)) + "_" + cache;
}

class FileNodeTest : public BlockFixture, public testing::WithParamInterface<Mode> {
protected:
    void SetUp() override
    {
        BlockFixture::SetUp();
        if (GetParam().engine == AioEngine::IoUring && !make_uring_engine(*m_loop))
            GTEST_SKIP() << "io_uring is not available here";
        if (GetParam().engine == AioEngine::Native && !make_native_engine(*m_loop, *m_pool))
            GTEST_SKIP() << "Linux AIO is not available here";
    }

    std::unique_ptr<BlockNode> open_rw(const std::string& p)
    {
        auto node = open_file(p, rw_flags(GetParam().cache, GetParam().engine));
        if (node) {
            auto* file = dynamic_cast<FileNode*>(node.get());
            EXPECT_EQ(file->engine(), GetParam().engine);
            EXPECT_EQ(file->direct_io(), GetParam().cache == CacheMode::None);
        }
        return node;
    }

    std::vector<uint8_t> read_host(const std::string& p, uint64_t offset, size_t len)
    {
        std::vector<uint8_t> buf(len);
        int fd = ::open(p.c_str(), O_RDONLY);
        EXPECT_EQ(pread(fd, buf.data(), len, off_t(offset)), ssize_t(len));
        ::close(fd);
        return buf;
    }
};

TEST_P(FileNodeTest, ReadWriteScatterGather)
{
    make_file(path("a.img"), 1 << 20, 0);
    auto node = open_rw(path("a.img"));
    ASSERT_TRUE(node);
    // Three segments, page-aligned so O_DIRECT needs no bounce.
    std::vector<uint8_t> buf(3 * 4096);
    for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = pattern(i);
    QIov qiov;
    qiov.add(buf.data() + 8192, 4096);
    qiov.add(buf.data(), 4096);
    qiov.add(buf.data() + 4096, 4096);
    alignas(4096) static uint8_t aligned[3 * 4096];
    std::copy(buf.begin(), buf.end(), aligned);
    QIov aligned_qiov;
    aligned_qiov.add(aligned, sizeof aligned);
    ASSERT_TRUE(run(node->pwritev(65536, aligned_qiov, RequestFlags::None)).ok());
    EXPECT_EQ(read_host(path("a.img"), 65536, buf.size()), buf);

    alignas(4096) static uint8_t back[3 * 4096];
    std::fill(std::begin(back), std::end(back), 0xaa);
    ASSERT_TRUE(run(node->preadv(65536, QIov(back, sizeof back))).ok());
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), back));
    ASSERT_TRUE(run(node->flush()).ok());
    ASSERT_TRUE(run(node->close()).ok());
}

TEST_P(FileNodeTest, ReadPastEndOfFileReadsZeroes)
{
    make_file(path("a.img"), 6000, 0x5a);
    auto node = open_rw(path("a.img"));
    ASSERT_TRUE(node);
    alignas(4096) static uint8_t buf[8192];
    std::fill(std::begin(buf), std::end(buf), 0xff);
    ASSERT_TRUE(run(node->preadv(0, QIov(buf, sizeof buf))).ok());
    for (size_t i = 0; i < 6000; ++i)
        ASSERT_EQ(buf[i], 0x5a) << i;
    for (size_t i = 6000; i < sizeof buf; ++i)
        ASSERT_EQ(buf[i], 0) << i;
}

TEST_P(FileNodeTest, UnalignedRequestsAreBounced)
{
    make_file(path("a.img"), 64 * 1024);
    auto node = open_rw(path("a.img"));
    ASSERT_TRUE(node);
    // Odd offset, odd length, odd buffer address: O_DIRECT cannot take it.
    std::vector<uint8_t> storage(5000);
    uint8_t* data = storage.data() + 3;
    for (int i = 0; i < 4000; ++i)
        data[i] = uint8_t(0x80 ^ i);
    ASSERT_TRUE(run(node->pwritev(4097 + 100, QIov(data, 4000), RequestFlags::None)).ok());
    auto host = read_host(path("a.img"), 4096, 8192);
    for (int i = 0; i < 8192; ++i) {
        uint64_t off = 4096 + uint64_t(i);
        uint8_t want = (off >= 4197 && off < 4197 + 4000) ? uint8_t(0x80 ^ (off - 4197)) : pattern(off);
        ASSERT_EQ(host[size_t(i)], want) << "offset " << off;
    }
    std::vector<uint8_t> back(4003);
    ASSERT_TRUE(run(node->preadv(4197, QIov(back.data() + 1, 3999))).ok());
    for (int i = 0; i < 3999; ++i)
        ASSERT_EQ(back[size_t(i) + 1], uint8_t(0x80 ^ i));
    // Unaligned write extending the file keeps the exact size.
    ASSERT_TRUE(run(node->pwritev(64 * 1024 + 10, QIov(data, 5), RequestFlags::None)).ok());
    EXPECT_EQ(std::filesystem::file_size(path("a.img")), 64u * 1024 + 15);
    EXPECT_EQ(node->size_bytes(), 64u * 1024 + 15);
}

TEST_P(FileNodeTest, WriteZeroesAndDiscard)
{
    make_file(path("a.img"), 1 << 20);
    auto node = open_rw(path("a.img"));
    ASSERT_TRUE(node);
    uint64_t before = st_blocks_bytes(path("a.img"));
    // MayUnmap punches a hole: the blocks go away and read as zeroes.
    ASSERT_TRUE(run(node->pwrite_zeroes(0, 256 * 1024, RequestFlags::MayUnmap)).ok());
    EXPECT_LE(st_blocks_bytes(path("a.img")), before - 256 * 1024);
    auto zero = read_host(path("a.img"), 0, 256 * 1024);
    EXPECT_TRUE(buffer_is_zero(zero.data(), zero.size()));
    auto s = run(node->block_status(0, 1 << 20));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->flags & (BlockStatus::Zero | BlockStatus::Data), uint32_t(BlockStatus::Zero));
    EXPECT_EQ(s->bytes, 256u * 1024);
    // Without MayUnmap the range stays allocated but reads as zeroes.
    ASSERT_TRUE(run(node->pwrite_zeroes(512 * 1024, 65536, RequestFlags::None)).ok());
    zero = read_host(path("a.img"), 512 * 1024, 65536);
    EXPECT_TRUE(buffer_is_zero(zero.data(), zero.size()));
    auto neighbour = read_host(path("a.img"), 512 * 1024 + 65536, 1);
    EXPECT_EQ(neighbour[0], pattern(512 * 1024 + 65536));
    // Discard punches too.
    ASSERT_TRUE(run(node->pdiscard(768 * 1024, 65536)).ok());
    s = run(node->block_status(768 * 1024, 65536));
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(s->flags & BlockStatus::Zero);
    EXPECT_EQ(std::filesystem::file_size(path("a.img")), 1u << 20);
    // Zeroes past the end grow the file.
    ASSERT_TRUE(run(node->pwrite_zeroes(1 << 20, 8192, RequestFlags::MayUnmap)).ok());
    EXPECT_EQ(std::filesystem::file_size(path("a.img")), (1u << 20) + 8192);
}

TEST_P(FileNodeTest, BlockStatusOnSparseFile)
{
    {
        std::ofstream out(path("s.img"), std::ios::binary);
    }
    ASSERT_EQ(::truncate(path("s.img").c_str(), 4 << 20), 0);
    auto node = open_rw(path("s.img"));
    ASSERT_TRUE(node);
    alignas(4096) static uint8_t data[65536];
    std::fill(std::begin(data), std::end(data), 1);
    ASSERT_TRUE(run(node->pwritev(1 << 20, QIov(data, sizeof data), RequestFlags::None)).ok());
    ASSERT_TRUE(run(node->flush()).ok());
    auto s = run(node->block_status(0, 4 << 20));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->flags, uint32_t(BlockStatus::Zero | BlockStatus::Allocated | BlockStatus::OffsetValid));
    EXPECT_EQ(s->bytes, 1u << 20);
    s = run(node->block_status(1 << 20, 3 << 20));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->flags, uint32_t(BlockStatus::Data | BlockStatus::Allocated | BlockStatus::OffsetValid));
    EXPECT_EQ(s->bytes, 65536u);
    EXPECT_EQ(s->host_offset, 1u << 20);
    EXPECT_EQ(s->host_node, node.get());
}

TEST_P(FileNodeTest, TruncateModes)
{
    make_file(path("t.img"), 0);
    auto node = open_rw(path("t.img"));
    ASSERT_TRUE(node);
    ASSERT_TRUE(run(node->truncate(1 << 20, PreallocMode::Off, false)).ok());
    EXPECT_EQ(node->size_bytes(), 1u << 20);
    EXPECT_EQ(std::filesystem::file_size(path("t.img")), 1u << 20);
    EXPECT_LT(st_blocks_bytes(path("t.img")), 1u << 20);
    ASSERT_TRUE(run(node->truncate(2 << 20, PreallocMode::Falloc, false)).ok());
    EXPECT_GE(st_blocks_bytes(path("t.img")), 1u << 20);
    ASSERT_TRUE(run(node->truncate(3 << 20, PreallocMode::Full, false)).ok());
    EXPECT_GE(st_blocks_bytes(path("t.img")), 2u << 20);
    EXPECT_EQ(std::filesystem::file_size(path("t.img")), 3u << 20);
    auto shrink = run(node->truncate(1 << 20, PreallocMode::Off, false));
    EXPECT_FALSE(shrink.ok());
    ASSERT_TRUE(run(node->truncate(1 << 20, PreallocMode::Off, true)).ok());
    EXPECT_EQ(std::filesystem::file_size(path("t.img")), 1u << 20);
    EXPECT_EQ(node->size_bytes(), 1u << 20);
    auto meta = run(node->truncate(2 << 20, PreallocMode::Metadata, false));
    ASSERT_FALSE(meta.ok());
    EXPECT_EQ(meta.error().message(), "Unsupported preallocation mode: metadata");
    auto alloc = node->allocated_size();
    ASSERT_TRUE(alloc.ok());
    EXPECT_EQ(alloc.value(), st_blocks_bytes(path("t.img")));
}

TEST_P(FileNodeTest, ManyRequestsInFlight)
{
    constexpr int k_requests = 600; // more than an engine keeps in the kernel (256)
    constexpr size_t k_chunk = 4096;
    make_file(path("c.img"), 0);
    auto node = open_rw(path("c.img"));
    ASSERT_TRUE(node);
    std::vector<uint8_t*> bufs;
    for (int i = 0; i < k_requests; ++i) {
        void* p = nullptr;
        ASSERT_EQ(posix_memalign(&p, 4096, k_chunk), 0);
        std::fill_n(static_cast<uint8_t*>(p), k_chunk, uint8_t(i));
        bufs.push_back(static_cast<uint8_t*>(p));
    }
    CoWaitGroup group(*m_loop);
    int failures = 0;
    int max_in_flight = 0;
    int in_flight = 0;
    auto one = [&](int i, bool write) -> Task<void> {
        ++in_flight;
        max_in_flight = std::max(max_in_flight, in_flight);
        Result<void> r = write
            ? co_await node->pwritev(uint64_t(i) * k_chunk, QIov(bufs[size_t(i)], k_chunk), RequestFlags::None)
            : co_await node->preadv(uint64_t(i) * k_chunk, QIov(bufs[size_t(i)], k_chunk));
        if (!r)
            ++failures;
        --in_flight;
        group.done();
    };
    auto all = [&](bool write) -> Task<void> {
        for (int i = 0; i < k_requests; ++i) {
            group.add();
            spawn(one(i, write));
        }
        co_await group.wait_idle();
    };
    run(all(true));
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(max_in_flight, k_requests);
    for (auto* b : bufs)
        std::fill_n(b, k_chunk, 0xee);
    run(all(false));
    EXPECT_EQ(failures, 0);
    for (int i = 0; i < k_requests; ++i) {
        ASSERT_EQ(bufs[size_t(i)][0], uint8_t(i));
        ASSERT_EQ(bufs[size_t(i)][k_chunk - 1], uint8_t(i));
    }
    for (auto* b : bufs)
        free(b);
}

TEST_P(FileNodeTest, ConcurrentUnalignedWritesToOneBlockKeepEveryByte)
{
    make_file(path("u.img"), 8192, 0);
    auto node = open_rw(path("u.img"));
    ASSERT_TRUE(node);
    // 64 one-byte writes into the same 4 KiB block at once: with O_DIRECT
    // each is a read-modify-write of the whole block and must not lose the
    // others' bytes.
    std::vector<uint8_t> bytes(64);
    CoWaitGroup group(*m_loop);
    auto one = [&](int i) -> Task<void> {
        bytes[size_t(i)] = uint8_t(i + 1);
        auto r = co_await node->pwritev(uint64_t(i) * 17, QIov(&bytes[size_t(i)], 1), RequestFlags::None);
        EXPECT_TRUE(r.ok());
        group.done();
    };
    auto all = [&]() -> Task<void> {
        for (int i = 0; i < 64; ++i) {
            group.add();
            spawn(one(i));
        }
        co_await group.wait_idle();
    };
    run(all());
    auto host = read_host(path("u.img"), 0, 64 * 17);
    for (int i = 0; i < 64; ++i)
        ASSERT_EQ(host[size_t(i) * 17], uint8_t(i + 1)) << i;
}

TEST_P(FileNodeTest, RandomUnalignedTrafficMatchesAShadowCopy)
{
    // 32 workers, each owning a 3000-byte stripe (stripes share 4 KiB
    // blocks, so O_DIRECT read-modify-writes of neighbours race), each
    // doing random unaligned writes and reads of its own stripe and
    // checking what it reads against its own shadow copy.
    constexpr int k_workers = 32;
    constexpr size_t k_stripe = 3000;
    constexpr int k_ops = 60;
    make_file(path("s.img"), k_workers * k_stripe, 0);
    auto node = open_rw(path("s.img"));
    ASSERT_TRUE(node);
    std::vector<uint8_t> shadow(k_workers * k_stripe, 0);
    CoWaitGroup group(*m_loop);
    int mismatches = 0;
    int failures = 0;
    auto worker = [&](int w) -> Task<void> {
        uint64_t seed = uint64_t(w) * 7919 + 1;
        auto next = [&] {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            return seed >> 33;
        };
        size_t base = size_t(w) * k_stripe;
        for (int op = 0; op < k_ops; ++op) {
            size_t off = next() % k_stripe;
            size_t len = 1 + next() % (k_stripe - off);
            std::vector<uint8_t> buf(len + 1);
            uint8_t* data = buf.data() + (next() & 1); // odd addresses too
            if (next() % 3) {
                for (size_t i = 0; i < len; ++i)
                    data[i] = uint8_t(next());
                auto r = co_await node->pwritev(base + off, QIov(data, len), RequestFlags::None);
                if (!r)
                    ++failures;
                std::copy(data, data + len, shadow.begin() + long(base + off));
            } else {
                auto r = co_await node->preadv(base + off, QIov(data, len));
                if (!r)
                    ++failures;
                if (!std::equal(data, data + len, shadow.begin() + long(base + off)))
                    ++mismatches;
            }
        }
        group.done();
    };
    auto all = [&]() -> Task<void> {
        for (int w = 0; w < k_workers; ++w) {
            group.add();
            spawn(worker(w));
        }
        co_await group.wait_idle();
    };
    run(all());
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(read_host(path("s.img"), 0, shadow.size()), shadow);
}

TEST_P(FileNodeTest, CloseWaitsForRequestsInFlight)
{
    make_file(path("w.img"), 1 << 20);
    auto node = open_rw(path("w.img"));
    ASSERT_TRUE(node);
    constexpr int k_requests = 50;
    void* mem = nullptr;
    ASSERT_EQ(posix_memalign(&mem, 4096, k_requests * 4096), 0);
    auto* bufs = static_cast<uint8_t*>(mem);
    int finished = 0;
    int finished_at_close = -1;
    auto one = [&](int i) -> Task<void> {
        auto r = co_await node->preadv(uint64_t(i) * 4096, QIov(bufs + i * 4096, 4096));
        EXPECT_TRUE(r.ok());
        ++finished;
    };
    auto main_task = [&]() -> Task<void> {
        for (int i = 0; i < k_requests; ++i)
            spawn(one(i));
        auto r = co_await node->close();
        EXPECT_TRUE(r.ok());
        finished_at_close = finished;
    };
    run(main_task());
    // The last request's caller may resume after close() does; what close
    // guarantees is that nothing is left in the kernel.
    EXPECT_GE(finished_at_close, k_requests - 1);
    for (int i = 0; i < 100 && finished < k_requests; ++i)
        m_loop->run_once(10);
    EXPECT_EQ(finished, k_requests);
    free(mem);
}

TEST_P(FileNodeTest, ReadOnlyRejectsWrites)
{
    make_file(path("r.img"), 4096);
    OpenFlags flags;
    flags.cache = GetParam().cache;
    flags.aio = GetParam().engine;
    auto node = open_file(path("r.img"), flags);
    ASSERT_TRUE(node);
    uint8_t b = 1;
    auto r = run(node->pwritev(0, QIov(&b, 1), RequestFlags::None));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::PermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(Engines, FileNodeTest,
    testing::Values(Mode { AioEngine::Threads, CacheMode::Writeback }, Mode { AioEngine::Threads, CacheMode::None },
        Mode { AioEngine::IoUring, CacheMode::Writeback }, Mode { AioEngine::IoUring, CacheMode::None },
        Mode { AioEngine::Native, CacheMode::None }),
    mode_name);

} // namespace
