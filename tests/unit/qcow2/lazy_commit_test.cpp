// lazy_refcounts=on commits (lazy_refcounts.cpp, commit.cpp): one flush per
// guest flush instead of two, and what a crash in the middle of a commit
// may leave: an image that opens (refcounts rebuilt), reads back every
// flushed write, and shows no stale bytes where the guest never wrote.
#include <random>

#include "tests/unit/qcow2/fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

constexpr uint64_t k_cluster = 65536;

// Protocol-level flushes per guest flush over `rounds` allocating 4 KiB
// writes (each into a new cluster), after the session is under way.
double flushes_per_guest_flush(const char* options)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create(std::string("size=64M,") + options, &mem);
    EXPECT_TRUE(img);
    if (!img)
        return 0;
    auto data = pattern(4096, 1);
    EXPECT_TRUE(env.write(*img, 0, data).ok());
    EXPECT_TRUE(env.run(img->flush()).ok());
    const int rounds = 32;
    uint64_t before = mem->flushes;
    for (int i = 1; i <= rounds; ++i) {
        EXPECT_TRUE(env.write(*img, uint64_t(i) * k_cluster, data).ok());
        EXPECT_TRUE(env.run(img->flush()).ok());
    }
    double per = double(mem->flushes - before) / rounds;
    CheckResult r = env.check(*img);
    EXPECT_EQ(r.corruptions + r.leaks + r.check_errors, 0u) << check_summary(r);
    return per;
}

} // namespace

TEST(Qcow2LazyCommit, OneFlushPerGuestFlushInsteadOfTwo)
{
    double strict = flushes_per_guest_flush("lazy_refcounts=off");
    double lazy = flushes_per_guest_flush("lazy_refcounts=on");
    EXPECT_EQ(strict, 2.0);
    EXPECT_EQ(lazy, 1.0);
}

// A crash at every write of a commit, with random subsets of the unflushed
// writes on "disk": the allocating write below lands in a cluster that an
// earlier discard freed (old bytes 0x77), so its entry may only reach the
// disk after its data, or the bytes the guest never wrote would read 0x77.
TEST(Qcow2LazyCommit, CrashMidCommitNeverShowsStaleBytes)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=16M,lazy_refcounts=on", &mem);
    ASSERT_TRUE(img);
    std::vector<uint8_t> old(k_cluster, 0x77);
    ASSERT_TRUE(env.write(*img, 0, old).ok());
    auto kept = pattern(8192, 9);
    ASSERT_TRUE(env.write(*img, 5 * k_cluster, kept).ok());
    ASSERT_TRUE(env.run(img->flush()).ok());
    ASSERT_TRUE(env.run(img->pdiscard(0, k_cluster)).ok());
    ASSERT_TRUE(env.run(img->flush()).ok());

    auto fresh = pattern(4096, 3);
    ASSERT_TRUE(env.write(*img, 2 * k_cluster, fresh).ok()); // reuses the freed cluster
    std::mt19937 rng(7);
    std::vector<std::vector<uint8_t>> crashes;
    mem->on_write = [&] {
        for (int i = 0; i < 4; ++i)
            crashes.push_back(mem->crash_image(rng));
    };
    ASSERT_TRUE(env.run(img->flush()).ok());
    mem->on_write = nullptr;
    ASSERT_FALSE(crashes.empty());

    for (auto& bytes : crashes) {
        auto again = env.open(bytes, true); // read-write: a dirty image is repaired
        ASSERT_TRUE(again.ok()) << again.error().message();
        auto got = env.read(**again, 2 * k_cluster, k_cluster);
        bool new_data = std::equal(fresh.begin(), fresh.end(), got.begin());
        bool zero_head = std::all_of(got.begin(), got.begin() + 4096, [](uint8_t b) { return b == 0; });
        EXPECT_TRUE(new_data || zero_head);
        EXPECT_TRUE(std::all_of(got.begin() + 4096, got.end(), [](uint8_t b) { return b == 0; }))
            << "bytes the guest never wrote read stale data";
        EXPECT_EQ(env.read(**again, 5 * k_cluster, kept.size()), kept);
        CheckResult r = env.check(**again);
        EXPECT_EQ(r.corruptions + r.check_errors, 0u) << check_summary(r);
    }
}

// Writes into clusters past the old end of the file need no data flush
// before their entries (they read as zeroes until written), but a crash
// mid-commit still leaves a consistent image after repair.
TEST(Qcow2LazyCommit, CrashMidCommitOnFreshClustersRepairs)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=16M,lazy_refcounts=on,cluster_size=4k", &mem);
    ASSERT_TRUE(img);
    std::mt19937 rng(11);
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> flushed;
    for (int round = 0; round < 6; ++round) {
        std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pending;
        for (int i = 0; i < 8; ++i) {
            uint64_t off = (uint64_t(round) * 8 + uint64_t(i)) * 3 * 4096 + 512;
            auto data = pattern(1024, uint32_t(round * 8 + i));
            ASSERT_TRUE(env.write(*img, off, data).ok());
            pending.push_back({off, data});
        }
        std::vector<std::vector<uint8_t>> crashes;
        mem->on_write = [&] { crashes.push_back(mem->crash_image(rng)); };
        ASSERT_TRUE(env.run(img->flush()).ok());
        mem->on_write = nullptr;
        for (auto& bytes : crashes) {
            auto again = env.open(bytes, true);
            ASSERT_TRUE(again.ok()) << again.error().message();
            for (auto& [off, data] : flushed)
                EXPECT_EQ(env.read(**again, off, data.size()), data);
            for (auto& [off, data] : pending) {
                auto got = env.read(**again, off - 512, 4096);
                bool zero = std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0; });
                bool whole = std::equal(data.begin(), data.end(), got.begin() + 512);
                EXPECT_TRUE(zero || whole);
                EXPECT_TRUE(std::all_of(got.begin(), got.begin() + 512, [](uint8_t b) { return b == 0; }));
            }
            CheckResult r = env.check(**again);
            EXPECT_EQ(r.corruptions + r.check_errors, 0u) << check_summary(r);
        }
        flushed.insert(flushed.end(), pending.begin(), pending.end());
    }
}
