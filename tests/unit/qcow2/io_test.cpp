// Read/write/COW/zero/discard/resize behaviour on in-memory images, with
// consistency checked by the driver's own check() after every scenario.
#include <random>

#include "tests/unit/qcow2/fixture.h"
#include "tests/unit/qcow2/requests.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

qcow2::Qcow2Node& q(BlockNode& n) { return static_cast<qcow2::Qcow2Node&>(n); }

void expect_clean(Qcow2Env& env, BlockNode& n)
{
    CheckResult r = env.check(n);
    EXPECT_EQ(r.corruptions, 0u) << check_summary(r);
    EXPECT_EQ(r.leaks, 0u) << check_summary(r);
    EXPECT_EQ(r.check_errors, 0u) << check_summary(r);
}

} // namespace

TEST(Qcow2Io, CreateLayoutMatchesQemu)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=64M", &mem);
    ASSERT_TRUE(img);
    const auto& h = q(*img).header();
    EXPECT_EQ(h.version, 3u);
    EXPECT_EQ(h.cluster_bits, 16u);
    EXPECT_EQ(h.refcount_table_offset, 0x10000u);
    EXPECT_EQ(h.refcount_table_clusters, 1u);
    EXPECT_EQ(h.l1_table_offset, 0x30000u);
    EXPECT_EQ(h.l1_size, 1u);
    EXPECT_EQ(img->size_bytes(), 64u << 20);
    CheckResult r = env.check(*img);
    EXPECT_EQ(r.image_end_offset, 0x40000u);
    EXPECT_EQ(r.total_clusters, 1024u);
    expect_clean(env, *img);
}

struct Geometry {
    const char* options;
};

class Qcow2Geometry : public ::testing::TestWithParam<const char*> {};

TEST_P(Qcow2Geometry, RandomWritesReadBackAndStayConsistent)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    uint64_t size = 4 << 20;
    auto img = env.create(std::string("size=4M,") + GetParam(), &mem);
    ASSERT_TRUE(img);
    mem->yield_each_request = true; // completions arrive later, as with real I/O
    std::vector<uint8_t> ref(size, 0);
    std::mt19937 rng(42);
    for (int i = 0; i < 60; ++i) {
        uint64_t len = 1 + rng() % 20000;
        uint64_t off = rng() % (size - len);
        auto data = pattern(len, i);
        ASSERT_TRUE(env.write(*img, off, data).ok());
        std::copy(data.begin(), data.end(), ref.begin() + off);
    }
    EXPECT_EQ(env.read(*img, 0, size), ref);
    expect_clean(env, *img);
    // Reopen from the bytes and read again.
    auto again = env.open(mem->data(), false);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(env.read(**again, 0, size), ref);
}

INSTANTIATE_TEST_SUITE_P(Geometries, Qcow2Geometry,
                         ::testing::Values("cluster_size=512", "cluster_size=4k", "cluster_size=64k",
                                           "cluster_size=2M", "compat=0.10", "compat=0.10,cluster_size=1k",
                                           "refcount_bits=1,cluster_size=512", "refcount_bits=2,cluster_size=1k",
                                           "refcount_bits=4", "refcount_bits=8", "refcount_bits=32",
                                           "refcount_bits=64,cluster_size=512", "lazy_refcounts=on",
                                           "preallocation=metadata", "preallocation=full,cluster_size=4k"));

TEST(Qcow2Io, PartialWriteReadsZeroesAround)
{
    Qcow2Env env;
    auto img = env.create("size=1M");
    ASSERT_TRUE(img);
    auto data = pattern(100, 1);
    ASSERT_TRUE(env.write(*img, 65536 + 1000, data).ok());
    auto back = env.read(*img, 65536, 65536);
    for (size_t i = 0; i < back.size(); ++i)
        ASSERT_EQ(back[i], (i >= 1000 && i < 1100) ? data[i - 1000] : 0) << i;
    auto st = env.run(img->block_status(65536, 1 << 20));
    ASSERT_TRUE(st.ok());
    EXPECT_TRUE(st->flags & BlockStatus::Data);
    EXPECT_TRUE(st->flags & BlockStatus::OffsetValid);
    EXPECT_EQ(st->bytes, 65536u);
    EXPECT_EQ(st->host_offset % 65536, 0u);
    auto st0 = env.run(img->block_status(0, 65536));
    EXPECT_FALSE(st0->flags & BlockStatus::Allocated);
}

TEST(Qcow2Io, WriteZeroesAndDiscardFreeClusters)
{
    Qcow2Env env;
    auto img = env.create("size=1M");
    ASSERT_TRUE(img);
    auto data = pattern(1 << 20, 7);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    EXPECT_EQ(env.check(*img).allocated_clusters, 16u);
    // Zero with unmap: clusters freed, zero flag set.
    ASSERT_TRUE(env.run(img->pwrite_zeroes(0, 4 * 65536, RequestFlags::MayUnmap)).ok());
    auto st = env.run(img->block_status(0, 1 << 20));
    EXPECT_EQ(st->flags, uint32_t(BlockStatus::Zero | BlockStatus::Allocated));
    EXPECT_EQ(st->bytes, 4u * 65536);
    EXPECT_EQ(env.check(*img).allocated_clusters, 12u);
    // Zero without unmap keeps the allocation.
    ASSERT_TRUE(env.run(img->pwrite_zeroes(4 * 65536, 65536, RequestFlags::None)).ok());
    auto st2 = env.run(img->block_status(4 * 65536, 65536));
    EXPECT_TRUE(st2->flags & BlockStatus::Zero);
    EXPECT_TRUE(st2->flags & BlockStatus::OffsetValid);
    // Partial zeroing writes zeroes.
    ASSERT_TRUE(env.run(img->pwrite_zeroes(6 * 65536 + 10, 100, RequestFlags::MayUnmap)).ok());
    std::fill(data.begin(), data.begin() + 5 * 65536, 0);
    std::fill(data.begin() + 6 * 65536 + 10, data.begin() + 6 * 65536 + 110, 0);
    // Discard.
    ASSERT_TRUE(env.run(img->pdiscard(8 * 65536, 2 * 65536)).ok());
    std::fill(data.begin() + 8 * 65536, data.begin() + 10 * 65536, 0);
    EXPECT_EQ(env.read(*img, 0, 1 << 20), data);
    expect_clean(env, *img);
    // Freed clusters are reused by later writes.
    MemNode* mem = static_cast<MemNode*>(img->file());
    uint64_t before = mem->size_bytes();
    auto more = pattern(4 * 65536, 9);
    ASSERT_TRUE(env.write(*img, 0, more).ok());
    EXPECT_EQ(mem->size_bytes(), before);
    expect_clean(env, *img);
}

TEST(Qcow2Io, V2WriteZeroesWithoutBackingDeallocates)
{
    Qcow2Env env;
    auto img = env.create("size=1M,compat=0.10");
    ASSERT_TRUE(img);
    auto data = pattern(1 << 20, 3);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    ASSERT_TRUE(env.run(img->pwrite_zeroes(0, 1 << 20, RequestFlags::MayUnmap)).ok());
    EXPECT_EQ(env.read(*img, 0, 1 << 20), std::vector<uint8_t>(1 << 20, 0));
    EXPECT_EQ(env.check(*img).allocated_clusters, 0u);
    expect_clean(env, *img);
}

TEST(Qcow2Io, GrowRelocatesL1AndShrinkFreesClusters)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M,cluster_size=512", &mem);
    ASSERT_TRUE(img);
    uint64_t old_l1 = q(*img).header().l1_table_offset;
    auto data = pattern(1 << 20, 5);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    ASSERT_TRUE(env.run(img->truncate(64 << 20, PreallocMode::Off, false)).ok());
    EXPECT_NE(q(*img).header().l1_table_offset, old_l1);
    EXPECT_GE(q(*img).header().l1_size, 64u * 1024 * 2 / 64);
    auto tail = pattern(4096, 6);
    ASSERT_TRUE(env.write(*img, (64 << 20) - 4096, tail).ok());
    EXPECT_EQ(env.read(*img, 0, 1 << 20), data);
    EXPECT_EQ(env.read(*img, (64 << 20) - 4096, 4096), tail);
    expect_clean(env, *img);
    // Shrinking needs the flag, then frees what lies beyond.
    EXPECT_FALSE(env.run(img->truncate(512 << 10, PreallocMode::Off, false)).ok());
    ASSERT_TRUE(env.run(img->truncate(512 << 10, PreallocMode::Off, true)).ok());
    EXPECT_EQ(img->size_bytes(), 512u << 10);
    EXPECT_EQ(env.read(*img, 0, 512 << 10), std::vector<uint8_t>(data.begin(), data.begin() + (512 << 10)));
    expect_clean(env, *img);
    EXPECT_LT(mem->size_bytes(), (1u << 20) + (512u << 10)); // data + L1 for 64M + L2s
}

TEST(Qcow2Io, ManyRequestsInFlight)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    const uint64_t size = 8 << 20;
    auto img = env.create("size=8M,cluster_size=4k", &mem);
    ASSERT_TRUE(img);
    mem->yield_each_request = true;
    std::vector<uint8_t> ref;
    auto reqs = disjoint_requests(size, 128, 24, 1234, ref);
    int failures = 0, done = 0;
    CoWaitGroup group(*env.loop);
    auto one = [&](WriteRequest* r) -> Task<void> {
        auto res = co_await img->pwritev(r->offset, QIov(r->data.data(), r->data.size()), RequestFlags::None);
        if (!res)
            ++failures;
        ++done;
        group.done();
    };
    auto all = [&]() -> Task<void> {
        for (auto& r : reqs) {
            group.add();
            spawn(one(&r));
        }
        co_await group.wait_idle();
    };
    env.run(all());
    EXPECT_EQ(done, 128);
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(env.read(*img, 0, size), ref);
    expect_clean(env, *img);
}

TEST(Qcow2Io, CopiedFlagMatchesRefcountAfterWrites)
{
    Qcow2Env env;
    auto img = env.create("size=2M");
    ASSERT_TRUE(img);
    auto data = pattern(2 << 20, 11);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    CheckResult r = env.check(*img);
    for (auto& m : r.messages)
        EXPECT_EQ(m.find("OFLAG_COPIED"), std::string::npos) << m;
    EXPECT_EQ(r.corruptions, 0u);
}

TEST(Qcow2Io, CompressedWritesReadBackWithZlibAndZstd)
{
    for (const char* type : {"zlib", "zstd"}) {
        Qcow2Env env;
        MemNode* mem = nullptr;
        auto img = env.create(std::string("size=1M,cluster_size=4k,compression_type=") + type, &mem);
        ASSERT_TRUE(img);
        ASSERT_TRUE(img->supports_compressed_writes());
        std::vector<uint8_t> ref(1 << 20, 0);
        for (int c = 0; c < 40; ++c) {
            std::vector<uint8_t> data(4096);
            for (size_t i = 0; i < data.size(); ++i)
                data[i] = uint8_t((i / 64 + c) % 7); // compressible
            if (c % 9 == 0)
                data = pattern(4096, c); // incompressible: stored plain
            uint64_t off = uint64_t(c * 3 % 256) * 4096;
            ASSERT_TRUE(env.run(img->pwritev_compressed(off, QIov(data.data(), data.size()))).ok());
            std::copy(data.begin(), data.end(), ref.begin() + off);
        }
        // Overwrite part of a compressed cluster: COW from the compressed data.
        auto small = pattern(100, 1);
        ASSERT_TRUE(env.write(*img, 3 * 4096 + 50, small).ok());
        std::copy(small.begin(), small.end(), ref.begin() + 3 * 4096 + 50);
        EXPECT_EQ(env.read(*img, 0, 1 << 20), ref) << type;
        CheckResult r = env.check(*img);
        EXPECT_EQ(r.corruptions + r.leaks, 0u) << check_summary(r);
        EXPECT_GT(r.compressed_clusters, 20u);
        auto st = env.run(img->block_status(0, 4096));
        EXPECT_TRUE(st->compressed);
        EXPECT_LT(mem->size_bytes(), 40u * 4096);
    }
}

TEST(Qcow2Io, LargeL1GrowthWithTinyRefcountBlocks)
{
    // 64 refcounts per block: a 200-cluster L1 needs refcount blocks laid
    // out around it at the end of the image.
    Qcow2Env env;
    auto img = env.create("size=1M,cluster_size=512,refcount_bits=64");
    ASSERT_TRUE(img);
    auto data = pattern(300000, 8);
    ASSERT_TRUE(env.write(*img, 1000, data).ok());
    ASSERT_TRUE(env.run(img->truncate(800 << 20, PreallocMode::Off, false)).ok());
    EXPECT_GE(q(*img).header().l1_size, 25600u);
    auto tail = pattern(70000, 9);
    ASSERT_TRUE(env.write(*img, (800 << 20) - 70000, tail).ok());
    EXPECT_EQ(env.read(*img, 1000, data.size()), data);
    EXPECT_EQ(env.read(*img, (800 << 20) - 70000, tail.size()), tail);
    expect_clean(env, *img);
}

TEST(Qcow2Io, AllocatingWritesFlushOnlyWhenAsked)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=4M,cluster_size=4k", &mem);
    ASSERT_TRUE(img);
    uint64_t flushes_before = mem->flushes;
    std::vector<uint8_t> ref(4 << 20, 0);
    for (int i = 0; i < 64; ++i) {
        auto data = pattern(1000, i);
        uint64_t off = uint64_t(i * 37 % 1024) * 4096 + 100;
        ASSERT_TRUE(env.write(*img, off, data).ok());
        std::copy(data.begin(), data.end(), ref.begin() + off);
    }
    // Metadata waits in the caches: no flush per allocating write, only
    // one before each of the two new L2 tables is linked into L1.
    EXPECT_LE(mem->flushes - flushes_before, 2u);
    uint64_t flushes_written = mem->flushes;
    ASSERT_TRUE(env.run(img->flush()).ok());
    // One commit: refcounts, flush, L2 tables, flush.
    EXPECT_LE(mem->flushes - flushes_written, 2u);
    // What the file holds after the flush is the whole image.
    auto again = env.open(mem->data(), false);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(env.read(**again, 0, 4 << 20), ref);
    expect_clean(env, **again);
}

TEST(Qcow2Io, ConcurrentCompressedWritesArePlacedInCallOrder)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M,cluster_size=4k", &mem);
    ASSERT_TRUE(img);
    mem->yield_each_request = true;
    const int n = 32;
    std::vector<std::vector<uint8_t>> data(n);
    std::vector<uint64_t> guest(n);
    CoWaitGroup group(*env.loop);
    int failures = 0;
    auto one = [&](int i) -> Task<void> {
        auto r = co_await img->pwritev_compressed(guest[i], QIov(data[i].data(), data[i].size()));
        failures += !r;
        group.done();
    };
    auto all = [&]() -> Task<void> {
        for (int i = 0; i < n; ++i) {
            guest[i] = uint64_t((i * 7) % 256) * 4096;
            data[i].resize(4096);
            for (size_t k = 0; k < 4096; ++k)
                data[i][k] = uint8_t(i + k / 300);
            if (i % 5 == 0) {
                std::mt19937 rng(i); // random: stored plain, in the same order
                for (auto& b : data[i])
                    b = uint8_t(rng());
            }
            group.add();
            spawn(one(i));
        }
        co_await group.wait_idle();
    };
    env.run(all());
    EXPECT_EQ(failures, 0);
    ASSERT_TRUE(env.run(img->flush()).ok());
    // The host offsets, from the (single) L2 table on disk.
    const std::vector<uint8_t>& file = mem->data();
    auto be64 = [&](uint64_t at) {
        uint64_t v = 0;
        for (int k = 0; k < 8; ++k)
            v = v << 8 | file.at(at + k);
        return v;
    };
    uint64_t l2 = be64(be64(40)) & 0x00fffffffffffe00ull;
    ASSERT_NE(l2, 0u);
    // Packed compressed data and plain clusters grow separately (as in
    // QEMU); each in the order the writes were issued.
    uint64_t last_packed = 0, last_plain = 0;
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(env.read(*img, guest[i], 4096), data[i]) << i;
        uint64_t entry = be64(l2 + guest[i] / 4096 * 8);
        bool compressed = entry & (1ull << 62);
        EXPECT_EQ(compressed, i % 5 != 0) << i;
        // 4 KiB clusters: a compressed entry's offset is bits 0..57.
        uint64_t host = compressed ? entry & ((1ull << 58) - 1) : entry & 0x00fffffffffffe00ull;
        uint64_t& last = compressed ? last_packed : last_plain;
        EXPECT_GT(host, last) << "write " << i << " placed before an earlier one";
        last = host;
    }
    expect_clean(env, *img);
}

TEST(Qcow2Io, FuaWriteIsDurableWithItsMapping)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M,cluster_size=4k", &mem);
    ASSERT_TRUE(img);
    auto data = pattern(3000, 7);
    ASSERT_TRUE(env.run(img->pwritev(8192 + 100, QIov(data.data(), data.size()), RequestFlags::Fua)).ok());
    // A crash now keeps everything the FUA write needed (pending writes are
    // those after the last flush; none may matter).
    std::mt19937 rng(5);
    for (int round = 0; round < 8; ++round) {
        auto crashed = env.open(mem->crash_image(rng), false);
        ASSERT_TRUE(crashed.ok());
        EXPECT_EQ(env.read(**crashed, 8192 + 100, data.size()), data) << round;
    }
}
