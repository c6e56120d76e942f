// Failure paths: injected write errors and ENOSPC mid-allocation, crashes
// at any write (writes since the last flush land or not, at random), the
// dirty and corrupt bits, and check/repair of damaged refcounts.
#include "tests/unit/qcow2/fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

// A workload that allocates data, L2 tables, refcount blocks, grows the
// refcount table and the L1 table, zeroes, discards and overwrites.
Task<void> workload(BlockNode& img, uint32_t seed)
{
    std::mt19937 rng(seed);
    for (int i = 0; i < 40; ++i) {
        uint64_t len = 512 * (1 + rng() % 16);
        uint64_t off = (rng() % ((img.size_bytes() - len) / 512)) * 512;
        auto data = pattern(len, rng());
        (void)co_await img.pwritev(off, QIov(data.data(), len), RequestFlags::None);
        if (i == 10)
            (void)co_await img.pwrite_zeroes(0, 8192, RequestFlags::MayUnmap);
        if (i == 20)
            (void)co_await img.pdiscard(16384, 8192);
        if (i == 25)
            (void)co_await img.truncate(img.size_bytes() * 2, PreallocMode::Off, false);
        if (i % 7 == 0)
            (void)co_await img.flush();
    }
}

uint64_t corruptions_of(Qcow2Env& env, std::vector<uint8_t> bytes, std::string* why)
{
    auto img = env.open(std::move(bytes), false);
    if (!img) {
        *why = "open failed: " + img.error().message();
        return 1;
    }
    CheckResult r = env.check(**img);
    *why = check_summary(r);
    return r.corruptions + r.check_errors;
}

} // namespace

TEST(Qcow2Robustness, WriteFailureAtEveryPointLeavesNoCorruption)
{
    for (int budget = 0; budget < 400; budget += 3) {
        Qcow2Env env;
        MemNode* mem = nullptr;
        auto img = env.create("size=256k,cluster_size=512,refcount_bits=64", &mem);
        ASSERT_TRUE(img);
        mem->fail_writes_after = int64_t(mem->writes) + budget;
        env.run(workload(*img, 7));
        mem->fail_writes_after = -1;
        std::string why;
        EXPECT_EQ(corruptions_of(env, mem->data(), &why), 0u) << "budget " << budget << ": " << why;
    }
}

TEST(Qcow2Robustness, OutOfSpaceMidAllocationLeavesNoCorruption)
{
    for (uint64_t limit = 200 * 1024; limit < 440 * 1024; limit += 12 * 1024) {
        Qcow2Env env;
        MemNode* mem = nullptr;
        auto img = env.create("size=1M,cluster_size=4k", &mem);
        ASSERT_TRUE(img);
        mem->max_size_bytes = limit;
        bool saw_enospc = false;
        std::vector<uint8_t> ref(1 << 20, 0);
        std::vector<bool> known(1 << 20, true); // a failed write leaves its range undefined
        std::mt19937 rng(limit);
        for (int i = 0; i < 64; ++i) {
            uint64_t off = (rng() % 250) * 4096 + 100;
            auto data = pattern(5000, i);
            auto r = env.write(*img, off, data);
            for (size_t k = 0; k < data.size(); ++k) {
                ref[off + k] = data[k];
                known[off + k] = r.ok();
            }
            if (!r)
                saw_enospc |= r.error().errno_value() == ENOSPC;
        }
        EXPECT_TRUE(saw_enospc) << limit;
        std::string why;
        EXPECT_EQ(corruptions_of(env, mem->data(), &why), 0u) << "limit " << limit << ": " << why;
        // Metadata is written back on flush (as QEMU's caches are): then
        // what was acknowledged reads back from the file.
        ASSERT_TRUE(env.run(img->flush()).ok()) << limit;
        EXPECT_EQ(corruptions_of(env, mem->data(), &why), 0u) << "limit " << limit << " after flush: " << why;
        auto again = env.open(mem->data(), false);
        ASSERT_TRUE(again.ok());
        auto back = env.read(**again, 0, 1 << 20);
        size_t mismatches = 0;
        for (size_t k = 0; k < back.size(); ++k)
            mismatches += known[k] && back[k] != ref[k];
        EXPECT_EQ(mismatches, 0u) << limit;
    }
}

TEST(Qcow2Robustness, CrashAtAnyWriteLeavesNoCorruptionAndKeepsFlushedData)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=256k,cluster_size=512,refcount_bits=64", &mem);
    ASSERT_TRUE(img);
    std::mt19937 rng(99);
    std::vector<std::vector<uint8_t>> crashes;
    mem->on_write = [&] {
        if (crashes.size() < 400)
            crashes.push_back(mem->crash_image(rng));
    };
    env.run(workload(*img, 3));
    ASSERT_TRUE(env.run(img->flush()).ok());
    mem->on_write = nullptr;
    std::vector<uint8_t> expect = env.read(*img, 0, img->size_bytes());
    ASSERT_GT(crashes.size(), 50u);
    int bad = 0;
    for (size_t i = 0; i < crashes.size(); ++i) {
        std::string why;
        if (corruptions_of(env, crashes[i], &why) != 0 && bad++ < 3)
            ADD_FAILURE() << "crash image " << i << ": " << why;
    }
    EXPECT_EQ(bad, 0);
    // After the flush nothing is pending: a crash now keeps everything.
    auto durable = env.open(mem->crash_image(rng), false);
    ASSERT_TRUE(durable.ok());
    EXPECT_EQ(env.read(**durable, 0, expect.size()), expect);
}

TEST(Qcow2Robustness, CheckReportsAndRepairsRefcountDamage)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M", &mem);
    ASSERT_TRUE(img);
    auto data = pattern(3 * 65536, 1);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    ASSERT_TRUE(env.run(img->close()).ok());
    std::vector<uint8_t> bytes = mem->data();
    // Refblock at cluster 2 (16-bit entries): data cluster 5 -> 0 (error),
    // append a free cluster 8 with refcount 1 (leak).
    bytes.resize(9 * 65536, 0);
    uint8_t* rb = &bytes[2 * 65536];
    ASSERT_EQ(qcow2::load_be16(rb + 2 * 5), 1);
    qcow2::store_be16(rb + 2 * 5, 0);
    qcow2::store_be16(rb + 2 * 8, 1);

    auto ro = env.open(bytes, false);
    ASSERT_TRUE(ro.ok());
    CheckResult r = env.check(**ro);
    EXPECT_EQ(r.corruptions, 1u + 1u) << check_summary(r); // refcount + OFLAG_COPIED
    EXPECT_EQ(r.leaks, 1u);
    bool saw_error = false, saw_leak = false;
    for (auto& m : r.messages) {
        saw_error |= m == "ERROR cluster 5 refcount=0 reference=1";
        saw_leak |= m == "Leaked cluster 8 refcount=1 reference=0";
    }
    EXPECT_TRUE(saw_error) << check_summary(r);
    EXPECT_TRUE(saw_leak) << check_summary(r);

    MemNode* rw_mem = nullptr;
    auto rw = env.open(bytes, true, &rw_mem);
    ASSERT_TRUE(rw.ok());
    CheckResult fixed = env.check(**rw, CheckFix::All);
    EXPECT_EQ(fixed.corruptions_fixed, 1u) << check_summary(fixed);
    EXPECT_EQ(fixed.leaks_fixed, 1u) << check_summary(fixed);
    CheckResult after = env.check(**rw);
    EXPECT_EQ(after.corruptions + after.leaks, 0u) << check_summary(after);
    EXPECT_EQ(env.read(**rw, 0, data.size()), data);
}

TEST(Qcow2Robustness, DirtyImageIsRepairedOnReadWriteOpen)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M,lazy_refcounts=on", &mem);
    ASSERT_TRUE(img);
    auto data = pattern(65536, 2);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    ASSERT_TRUE(env.run(img->close()).ok());
    std::vector<uint8_t> bytes = mem->data();
    bytes[79] |= 1; // incompatible_features bit 0: dirty
    uint8_t* rb = &bytes[2 * 65536];
    qcow2::store_be16(rb + 2 * 4, 0); // stale refcount of the data cluster
    auto ro = env.open(bytes, false);
    ASSERT_TRUE(ro.ok());
    EXPECT_TRUE((*ro)->dirty());
    MemNode* rw_mem = nullptr;
    auto rw = env.open(bytes, true, &rw_mem);
    ASSERT_TRUE(rw.ok()) << rw.error().message();
    EXPECT_FALSE((*rw)->dirty());
    EXPECT_EQ(rw_mem->data()[79] & 1, 0);
    CheckResult r = env.check(**rw);
    EXPECT_EQ(r.corruptions + r.leaks, 0u) << check_summary(r);
}

TEST(Qcow2Robustness, CorruptBitRefusesReadWrite)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M", &mem);
    ASSERT_TRUE(img);
    std::vector<uint8_t> bytes = mem->data();
    bytes[79] |= 2;
    auto rw = env.open(bytes, true);
    ASSERT_FALSE(rw.ok());
    EXPECT_EQ(rw.error().message(), "qcow2: Image is corrupt; cannot be opened read/write");
    auto ro = env.open(bytes, false);
    ASSERT_TRUE(ro.ok());
    EXPECT_EQ((*ro)->format_specific_info()["data"]["corrupt"], true);
}

TEST(Qcow2Robustness, WritesThroughCorruptL2EntryAreRefused)
{
    Qcow2Env env;
    MemNode* mem = nullptr;
    auto img = env.create("size=1M", &mem);
    ASSERT_TRUE(img);
    auto data = pattern(65536, 4);
    ASSERT_TRUE(env.write(*img, 0, data).ok());
    ASSERT_TRUE(env.run(img->close()).ok());
    std::vector<uint8_t> bytes = mem->data();
    uint64_t l2 = qcow2::load_be64(&bytes[3 * 65536]) & qcow2::k_l1e_offset_mask;
    // Point guest cluster 0 at the refcount table, keeping COPIED.
    qcow2::store_be64(&bytes[l2], 65536 | qcow2::k_oflag_copied);
    MemNode* rw_mem = nullptr;
    auto rw = env.open(bytes, true, &rw_mem);
    ASSERT_TRUE(rw.ok());
    auto r = env.write(**rw, 0, data);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("overlaps with refcount table"), std::string::npos) << r.error().message();
    EXPECT_EQ(rw_mem->data()[79] & 2, 2); // marked corrupt
}
