// Extended L2 entries: subcluster allocation and copy-on-write, zero and
// discard bits as QEMU sets them, compressed and snapshot-shared clusters,
// check of bad bitmaps, crashes mid-workload, hostile bitmaps.
#include "tests/unit/qcow2/fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::qcow2;
using namespace kiln::block::test;

namespace {

constexpr uint64_t k_cs = 65536;

struct L2Entry {
    uint64_t entry = 0;
    uint64_t bitmap = 0;
};

// The extended L2 entry of guest cluster `index` (first L2 table) as it
// is on disk.
L2Entry entry_of(const std::vector<uint8_t>& img, uint64_t index)
{
    uint64_t l1_offset = load_be64(&img[40]);
    uint64_t l2 = load_be64(&img[l1_offset]) & k_l1e_offset_mask;
    if (!l2)
        return {};
    return {load_be64(&img[l2 + index * 16]), load_be64(&img[l2 + index * 16 + 8])};
}

struct Ext {
    Qcow2Env env;
    MemNode* mem = nullptr;
    std::unique_ptr<BlockNode> img;
    std::vector<uint8_t> ref;

    explicit Ext(const std::string& options = "size=1M,extended_l2=on")
    {
        img = env.create(options, &mem);
        ref.assign(img ? img->size_bytes() : 0, 0);
    }
    void write(uint64_t off, uint64_t len, uint32_t seed)
    {
        auto d = pattern(len, seed);
        ASSERT_TRUE(env.write(*img, off, d).ok());
        std::copy(d.begin(), d.end(), ref.begin() + long(off));
    }
    void zero(uint64_t off, uint64_t len, RequestFlags f = RequestFlags::None)
    {
        auto r = env.run(img->pwrite_zeroes(off, len, f));
        ASSERT_TRUE(r.ok()) << r.error().message();
        std::fill(ref.begin() + long(off), ref.begin() + long(off + len), 0);
    }
    // Whole clusters read as zero afterwards (no backing); parts are kept.
    void discard(uint64_t off, uint64_t len)
    {
        ASSERT_TRUE(env.run(img->pdiscard(off, len)).ok());
        uint64_t cs = img->cluster_size();
        uint64_t a = align_up(off, cs), b = std::min<uint64_t>((off + len) / cs * cs, ref.size());
        if (off + len == ref.size())
            b = ref.size();
        if (a < b)
            std::fill(ref.begin() + long(a), ref.begin() + long(b), 0);
    }
    L2Entry on_disk(uint64_t index)
    {
        EXPECT_TRUE(env.run(img->flush()).ok());
        return entry_of(mem->data(), index);
    }
    void expect_content(const std::string& where = "")
    {
        auto got = env.read(*img, 0, ref.size());
        size_t i = 0;
        while (i < got.size() && got[i] == ref[i])
            ++i;
        ASSERT_EQ(i, got.size()) << where << ": content differs from the reference at offset " << i;
    }
};

} // namespace

TEST(Qcow2Subclusters, CreateChecksClusterSizeAndCompat)
{
    Qcow2Env env;
    auto opts = OptionList::parse("size=1M,extended_l2=on,cluster_size=8k").value();
    auto r = env.run(format_node(env.ctx, std::make_unique<MemNode>(env.ctx), "/mem/x", opts));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
    opts = OptionList::parse("size=1M,extended_l2=on,compat=0.10").value();
    r = env.run(format_node(env.ctx, std::make_unique<MemNode>(env.ctx), "/mem/x", opts));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Extended L2 entries are only supported with compatibility level 1.1 and above "
                                   "(use version=v3 or greater)");
}

TEST(Qcow2Subclusters, PartialWriteAllocatesOnlyTheTouchedSubclusters)
{
    Ext t;
    ASSERT_TRUE(t.img);
    t.write(1024, 3072, 1); // subcluster 0 partly (COW of [0, 1k) from zeroes), 1 whole
    L2Entry e = t.on_disk(0);
    EXPECT_TRUE(e.entry & k_oflag_copied);
    EXPECT_EQ(e.bitmap, 0x3u);
    // Only 4 KiB of the 64 KiB cluster was written: the rest of it may
    // hold anything, the bitmap says it reads from below.
    uint64_t host = e.entry & k_l2e_offset_mask;
    const auto& raw = t.mem->data();
    ASSERT_GE(raw.size(), host + 4096);
    EXPECT_EQ(raw[host + 1023], 0);
    EXPECT_EQ(raw[host + 1024], pattern(3072, 1)[0]);
    // A second write into the same cluster widens the bitmap in place.
    t.write(40000, 100, 2);
    L2Entry e2 = t.on_disk(0);
    EXPECT_EQ(e2.entry, e.entry);
    EXPECT_EQ(e2.bitmap, 0x3u | (1u << (40000 / 2048)));
    t.expect_content();
    EXPECT_EQ(t.env.check(*t.img).corruptions, 0u);
}

TEST(Qcow2Subclusters, ZeroAndDiscardSetBitsAsQemu)
{
    Ext t;
    ASSERT_TRUE(t.img);
    t.write(0, k_cs, 1);
    t.discard(0, 4096);                // part of a cluster: ignored
    t.zero(8192, 1024);                // part of a subcluster: zero data
    t.zero(16384, 4096);               // subclusters 8, 9: zero bits
    EXPECT_EQ(t.on_disk(0).bitmap, 0x00000300fffffcffull);
    t.write(16384 + 100, 10, 3); // into a zero subcluster: the rest of it stays zero
    EXPECT_EQ(t.on_disk(0).bitmap, 0x00000200fffffdffull);
    t.expect_content();

    L2Entry before = t.on_disk(0);
    t.zero(0, k_cs); // no unmap: the host cluster stays, every subcluster zero
    EXPECT_EQ(t.on_disk(0).entry, before.entry);
    EXPECT_EQ(t.on_disk(0).bitmap, 0xffffffff00000000ull);
    t.write(k_cs, k_cs, 4);
    t.zero(k_cs, k_cs, RequestFlags::MayUnmap);
    EXPECT_EQ(t.on_disk(1).entry, 0u);
    EXPECT_EQ(t.on_disk(1).bitmap, 0xffffffff00000000ull);
    t.write(2 * k_cs, 3000, 5);
    t.discard(2 * k_cs, k_cs);
    EXPECT_EQ(t.on_disk(2).entry, 0u);
    EXPECT_EQ(t.on_disk(2).bitmap, 0xffffffff00000000ull);
    t.expect_content();
    CheckResult c = t.env.check(*t.img);
    EXPECT_EQ(c.corruptions + c.leaks, 0u) << check_summary(c);
}

TEST(Qcow2Subclusters, CompressedClusterIsCopiedWholeOnPartialWrite)
{
    Ext t;
    ASSERT_TRUE(t.img);
    std::vector<uint8_t> text(k_cs);
    for (size_t i = 0; i < text.size(); ++i)
        text[i] = uint8_t("compressible "[i % 13]);
    ASSERT_TRUE(t.env.run(t.img->pwritev_compressed(0, QIov(text.data(), text.size()))).ok());
    std::copy(text.begin(), text.end(), t.ref.begin());
    L2Entry c = t.on_disk(0);
    EXPECT_TRUE(c.entry & k_oflag_compressed);
    EXPECT_EQ(c.bitmap, 0u);
    t.write(5000, 200, 6);
    L2Entry n = t.on_disk(0);
    EXPECT_FALSE(n.entry & k_oflag_compressed);
    EXPECT_EQ(n.bitmap, 0xffffffffull);
    t.expect_content();
    CheckResult r = t.env.check(*t.img);
    EXPECT_EQ(r.corruptions + r.leaks, 0u) << check_summary(r);
}

TEST(Qcow2Subclusters, ClusterSharedWithSnapshotIsCopiedWithItsAllocatedSubclusters)
{
    Ext t;
    ASSERT_TRUE(t.img);
    t.write(4096, 2048, 1);   // subcluster 2
    t.write(20480, 2048, 2);  // subcluster 10
    t.zero(40960, 4096);      // subclusters 20, 21: zero bits
    auto before = t.ref;
    SnapshotInfo info;
    info.name = "one";
    ASSERT_TRUE(t.env.run(t.img->snapshot_create(info)).ok());
    L2Entry shared = t.on_disk(0);
    EXPECT_FALSE(shared.entry & k_oflag_copied);
    t.write(10000, 10, 3); // subcluster 4: the copy covers subclusters 2..10
    L2Entry mine = t.on_disk(0);
    EXPECT_NE(mine.entry & k_l2e_offset_mask, shared.entry & k_l2e_offset_mask);
    EXPECT_TRUE(mine.entry & k_oflag_copied);
    EXPECT_EQ(mine.bitmap, (0x7ffull & ~0x3ull) | (0x3ull << 52));
    t.expect_content();
    CheckResult r = t.env.check(*t.img);
    EXPECT_EQ(r.corruptions + r.leaks, 0u) << check_summary(r);
    ASSERT_TRUE(t.env.run(t.img->snapshot_goto("one")).ok());
    t.ref = before;
    t.expect_content();
    r = t.env.check(*t.img);
    EXPECT_EQ(r.corruptions + r.leaks, 0u) << check_summary(r);
}

TEST(Qcow2Subclusters, CheckReportsInvalidBitmapsAndReadsFailCleanly)
{
    Ext t;
    ASSERT_TRUE(t.img);
    t.write(0, k_cs, 1);
    t.write(2 * k_cs, 4096, 2);
    ASSERT_TRUE(t.env.run(t.img->close()).ok());
    auto bytes = t.mem->data();
    uint64_t l2 = load_be64(&bytes[load_be64(&bytes[40])]) & k_l1e_offset_mask;
    store_be64(&bytes[l2 + 8], 0x0000000100000001ull);      // allocated and zero
    store_be64(&bytes[l2 + 16 + 8], 0x0000000000000001ull); // allocated in an unallocated cluster
    store_be64(&bytes[l2 + 32 + 8], 0x0000000100000003ull);
    auto img = t.env.open(bytes, true);
    ASSERT_TRUE(img.ok()) << img.error().message();
    CheckResult r = t.env.check(**img);
    EXPECT_EQ(r.corruptions, 3u) << check_summary(r);
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[1], "ERROR: Unallocated cluster has non-zero subcluster allocation map");
    EXPECT_NE(r.messages[0].find("Allocated cluster has corrupted subcluster allocation bitmap"), std::string::npos);
    // Repair leaves them (as qemu-img does) and does not crash.
    r = t.env.check(**img, CheckFix::All);
    EXPECT_EQ(r.corruptions, 3u);
    std::vector<uint8_t> buf(4096);
    for (uint64_t c = 0; c < 3; ++c) {
        auto rd = t.env.run((*img)->preadv(c * k_cs, QIov(buf.data(), buf.size())));
        ASSERT_FALSE(rd.ok()) << "cluster " << c;
        EXPECT_EQ(rd.error().message().find("Invalid cluster entry found"), 0u) << rd.error().message();
        auto wr = t.env.run((*img)->pwritev(c * k_cs + 100, QIov(buf.data(), 100), RequestFlags::None));
        EXPECT_FALSE(wr.ok()) << "cluster " << c;
    }
}

TEST(Qcow2Subclusters, RandomWorkloadMatchesReferenceAndSurvivesCrashes)
{
    for (const char* options : {"size=2M,extended_l2=on", "size=2M,extended_l2=on,cluster_size=16k",
                                "size=2M,extended_l2=on,refcount_bits=1,lazy_refcounts=on"}) {
        Ext t(options);
        ASSERT_TRUE(t.img);
        t.mem->yield_each_request = true;
        std::mt19937 rng(99);
        uint64_t size = t.ref.size();
        for (int i = 0; i < 150; ++i) {
            uint64_t len = 1 + rng() % 70000;
            uint64_t off = rng() % (size - len);
            switch (rng() % 6) {
            case 0: t.zero(off, len, RequestFlags::MayUnmap); break;
            case 1: t.zero(off & ~511ull, (len + 511) & ~511ull); break;
            case 2: t.discard(off & ~511ull, (len + 511) & ~511ull); break;
            default: t.write(off, len, uint32_t(i)); break;
            }
            if (getenv("KILN_TEST_DEBUG"))
                t.expect_content(std::string(options) + " op " + std::to_string(i));
            if (i % 10 == 0) {
                ASSERT_TRUE(t.env.run(t.img->flush()).ok());
            }
            if (i % 25 == 0) {
                // A crash now (unflushed writes land or not) leaves a
                // consistent image: leaks at worst.
                auto crashed = t.env.open(t.mem->crash_image(rng), true);
                ASSERT_TRUE(crashed.ok()) << crashed.error().message();
                CheckResult c = t.env.check(**crashed);
                EXPECT_EQ(c.corruptions + c.check_errors, 0u) << options << " op " << i << ": " << check_summary(c);
            }
        }
        t.expect_content();
        CheckResult c = t.env.check(*t.img);
        EXPECT_EQ(c.corruptions + c.leaks + c.check_errors, 0u) << options << ": " << check_summary(c);
    }
}

TEST(Qcow2Subclusters, HostileL2EntriesNeverCrash)
{
    Ext t("size=1M,extended_l2=on,cluster_size=16k");
    ASSERT_TRUE(t.img);
    for (uint64_t off = 0; off + 9000 <= (1u << 20); off += 40000)
        t.write(off, 9000, uint32_t(off));
    ASSERT_TRUE(t.env.run(t.img->close()).ok());
    auto good = t.mem->data();
    uint64_t l2 = load_be64(&good[load_be64(&good[40])]) & k_l1e_offset_mask;
    std::mt19937 rng(7);
    for (int iter = 0; iter < 150; ++iter) {
        auto b = good;
        for (int f = 0; f < 1 + int(rng() % 6); ++f)
            b[l2 + rng() % 16384] = uint8_t(rng());
        auto img = t.env.open(b, true);
        if (!img)
            continue;
        std::vector<uint8_t> buf(20000, 0x5a);
        for (int op = 0; op < 12; ++op) {
            uint64_t off = rng() % ((1u << 20) - buf.size());
            switch (op % 4) {
            case 0: (void)t.env.run((*img)->preadv(off, QIov(buf.data(), buf.size()))); break;
            case 1: (void)t.env.run((*img)->pwritev(off, QIov(buf.data(), 3000), RequestFlags::None)); break;
            case 2: (void)t.env.run((*img)->pwrite_zeroes(off & ~511ull, 16384, RequestFlags::MayUnmap)); break;
            default: (void)t.env.run((*img)->pdiscard(off & ~511ull, 40000)); break;
            }
        }
        (void)t.env.run((*img)->check(CheckFix::None));
        (void)t.env.run((*img)->close());
    }
}
