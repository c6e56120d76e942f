// The block-dirty-bitmap-* operations on qcow2 (PersistentBitmaps): what
// they store on close is read back from the file and by qemu-img, with
// QEMU's checks and messages, and bitmaps QEMU wrote merge into Kiln's.
#include <set>

#include "block/dirty_bitmap.h"
#include "tests/unit/qcow2/bitmap_parse.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

class Qcow2BitmapOps : public Qcow2Interop {
protected:
    std::string make(const std::string& options = "")
    {
        std::string img = path("o.qcow2"), out;
        EXPECT_EQ(sh("qemu-img create -q -f qcow2 " + options + " " + img + " 64M && qemu-img bitmap --add " + img
                         + " q0 && qemu-io -c 'write 1M 64k' -c 'write 5M 1k' " + img,
                     &out),
                  0)
            << out;
        return img;
    }
    static const ParsedBitmap* find(const std::vector<ParsedBitmap>& list, const std::string& name)
    {
        for (const auto& b : list)
            if (b.name == name)
                return &b;
        return nullptr;
    }
    static std::string message(const Result<void>& r) { return r ? "" : r.error().message(); }
};

TEST(DirtyBits, MergeAcrossGranularities)
{
    DirtyBits fine{512, 1 << 20, std::vector<uint8_t>(256, 0)};
    fine.set_range(70000, 1); // chunk 136
    DirtyBits coarse{65536, 1 << 20, std::vector<uint8_t>(2, 0)};
    coarse.merge(fine);
    EXPECT_TRUE(coarse.test(1));
    EXPECT_FALSE(coarse.test(0));
    DirtyBits back{512, 1 << 20, std::vector<uint8_t>(256, 0)};
    back.merge(coarse); // a coarse chunk dirties all 128 fine chunks under it
    for (uint64_t c = 0; c < 2048; ++c)
        EXPECT_EQ(back.test(c), c >= 128 && c < 256) << c;
}

TEST_F(Qcow2BitmapOps, EditsAreStoredOnCloseAndQemuAgrees)
{
    std::string img = make();
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    PersistentBitmaps* bm = n->persistent_bitmaps();
    ASSERT_NE(bm, nullptr);
    ASSERT_TRUE(bm->bitmap_add("k1", 4096, false));
    ASSERT_TRUE(bm->bitmap_add("k2", std::nullopt, false));
    ASSERT_TRUE(bm->bitmap_enable("k2", false));
    auto q0 = run(bm->bitmap_bits("q0"));
    ASSERT_TRUE(q0.ok());
    EXPECT_TRUE(q0->test(16));
    EXPECT_TRUE(q0->test(80));
    ASSERT_TRUE(bm->bitmap_merge("k1", *q0)); // 64k chunks into 4k ones
    kiln_write(*n, 10 << 20, random_bytes(100, 1)); // k1 records, k2 does not
    ASSERT_TRUE(bm->bitmap_clear("q0"));
    close(n);
    expect_qemu_clean(img);
    auto list = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[0].name, "q0");
    EXPECT_TRUE(list[0].set_bits.empty());
    const ParsedBitmap* k1 = find(list, "k1");
    ASSERT_NE(k1, nullptr);
    EXPECT_EQ(k1->granularity_bits, 12u);
    EXPECT_EQ(k1->flags, 2u);
    std::set<uint64_t> want;
    for (uint64_t c = 256; c < 272; ++c)
        want.insert(c); // 1M..1M+64k
    for (uint64_t c = 1280; c < 1296; ++c)
        want.insert(c); // 5M's 64k chunk
    want.insert(2560); // the write at 10M
    EXPECT_EQ(k1->set_bits, want);
    const ParsedBitmap* k2 = find(list, "k2");
    ASSERT_NE(k2, nullptr);
    EXPECT_EQ(k2->flags, 0u);
    EXPECT_EQ(k2->granularity_bits, 16u);
    EXPECT_TRUE(k2->set_bits.empty());

    std::string out;
    ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0) << out;
    auto j = nlohmann::json::parse(out, nullptr, false);
    auto k = kiln_open(img, false);
    ASSERT_TRUE(k);
    EXPECT_EQ(j["format-specific"], k->format_specific_info());
    close(k);

    // QEMU writes into k1 (enabled), then Kiln removes q0 and merges k1
    // into the disabled k2.
    ASSERT_EQ(sh("qemu-io -c 'write 20M 4k' " + img, &out), 0) << out;
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    bm = n->persistent_bitmaps();
    ASSERT_TRUE(bm->bitmap_remove("q0"));
    auto k1bits = run(bm->bitmap_bits("k1"));
    ASSERT_TRUE(k1bits.ok());
    ASSERT_TRUE(bm->bitmap_merge("k2", *k1bits));
    close(n);
    expect_qemu_clean(img);
    list = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(find(list, "q0"), nullptr);
    EXPECT_EQ(find(list, "k2")->set_bits, std::set<uint64_t>({16, 80, 160, 320}));
}

TEST_F(Qcow2BitmapOps, RemovingTheLastBitmapDropsTheExtension)
{
    std::string img = make();
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    ASSERT_TRUE(n->persistent_bitmaps()->bitmap_remove("q0"));
    close(n);
    expect_qemu_clean(img);
    auto bytes = read_host(img);
    EXPECT_EQ(bytes[95] & 1, 0); // autoclear bit 0
    std::string out;
    ASSERT_EQ(sh("qemu-img info " + img, &out), 0);
    EXPECT_EQ(out.find("bitmaps"), std::string::npos) << out;
    // And a new one in an image that never had the extension.
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    ASSERT_TRUE(n->persistent_bitmaps()->bitmap_add("fresh", 65536, false));
    kiln_write(*n, 0, random_bytes(10, 2));
    close(n);
    expect_qemu_clean(img);
    auto list = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].set_bits, std::set<uint64_t>({0}));
}

TEST_F(Qcow2BitmapOps, QemuMessagesForRefusedOperations)
{
    std::string img = make();
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    PersistentBitmaps* bm = n->persistent_bitmaps();
    EXPECT_EQ(message(bm->bitmap_add("q0", std::nullopt, false)), "Bitmap already exists: q0");
    EXPECT_EQ(message(bm->bitmap_remove("nope")), "Dirty bitmap 'nope' not found");
    EXPECT_EQ(message(bm->bitmap_clear("nope")), "Dirty bitmap 'nope' not found");
    EXPECT_EQ(message(bm->bitmap_enable("nope", true)), "Dirty bitmap 'nope' not found");
    EXPECT_EQ(message(bm->bitmap_add("x", 512, false)), "");
    EXPECT_EQ(message(bm->bitmap_add(std::string(1024, 'n'), 65536, false)),
              "Can't make bitmap '" + std::string(1024, 'n') + "' persistent in '" + bm->bitmap_node_name()
                  + "': Name length exceeds maximum (1023 characters)");
    close(n);

    // A bitmap left in use by a killed session is inconsistent: only
    // removal is allowed, and resize refuses.
    {
        auto k = kiln_open(img, true);
        ASSERT_TRUE(k);
        kiln_write(*k, 0, random_bytes(10, 3));
        // dropped without close
    }
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    bm = n->persistent_bitmaps();
    std::string inconsistent = "Bitmap 'q0' is inconsistent and cannot be used\n"
                               "Try block-dirty-bitmap-remove to delete this bitmap from disk";
    EXPECT_EQ(message(bm->bitmap_clear("q0")), inconsistent);
    EXPECT_EQ(message(bm->bitmap_enable("q0", false)), inconsistent);
    EXPECT_EQ(run(bm->bitmap_bits("q0")).error().message(), inconsistent);
    EXPECT_EQ(message(run(n->truncate(128 << 20, PreallocMode::Off, false))), inconsistent);
    ASSERT_TRUE(bm->bitmap_remove("q0"));
    ASSERT_TRUE(bm->bitmap_remove("x")); // in use too
    ASSERT_TRUE(bm->bitmap_add("y", 512, false));
    EXPECT_TRUE(run(n->truncate(128 << 20, PreallocMode::Off, false)).ok());
    kiln_write(*n, 100 << 20, random_bytes(10, 4));
    close(n);
    expect_qemu_clean(img);
    auto list = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].name, "y");
    EXPECT_EQ(list[0].table_size, 1u); // 128M at 512 bytes a bit: 32 KiB of bits, one cluster
    EXPECT_EQ(list[0].set_bits, std::set<uint64_t>({204800}));

    // Read-only opens list bitmaps but refuse changes; v2 images cannot
    // store any; a bitmap too big for the disk is refused.
    auto ro = kiln_open(img, false);
    ASSERT_TRUE(ro);
    EXPECT_EQ(message(ro->persistent_bitmaps()->bitmap_clear("y")), "Bitmap 'y' is readonly and cannot be modified");
    close(ro);
    std::string v2 = path("v2.qcow2"), huge = path("huge.qcow2"), out;
    ASSERT_EQ(sh("qemu-img create -q -f qcow2 -o compat=0.10 " + v2 + " 1M && qemu-img create -q -f qcow2 " + huge
                     + " 64T",
                 &out),
              0)
        << out;
    auto n2 = kiln_open(v2, true);
    ASSERT_TRUE(n2);
    EXPECT_FALSE(n2->persistent_bitmaps()->bitmaps_supported());
    auto r = n2->persistent_bitmaps()->bitmap_add("x", std::nullopt, false);
    EXPECT_EQ(message(r), "Can't make bitmap 'x' persistent in '" + n2->persistent_bitmaps()->bitmap_node_name()
                              + "': Cannot store dirty bitmaps in qcow2 v2 files");
    close(n2);
    auto nh = kiln_open(huge, true);
    ASSERT_TRUE(nh);
    r = nh->persistent_bitmaps()->bitmap_add("x", 4096, false);
    EXPECT_NE(message(r).find("Too much space will be occupied by the bitmap. Use larger granularity"),
              std::string::npos);
    close(nh);
}

TEST_F(Qcow2BitmapOps, ReopenReadWriteTracksAndStores)
{
    // The monitor's commit reopens a read-only backing file read-write:
    // its bitmaps are tracked meanwhile and stored when it goes back.
    std::string img = make();
    auto n = kiln_open(img, false);
    ASSERT_TRUE(n);
    ASSERT_TRUE(run(n->reopen(true)).ok());
    EXPECT_EQ(parse_bitmaps(read_host(img), 65536)[0].flags, 3u); // auto + in use
    kiln_write(*n, 7 << 20, random_bytes(10, 5));
    ASSERT_TRUE(run(n->reopen(false)).ok());
    auto list = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].flags, 2u);
    EXPECT_EQ(list[0].set_bits, std::set<uint64_t>({16, 80, 112}));
    expect_qemu_clean(img);
    close(n);
    expect_qemu_clean(img);
}

TEST_F(Qcow2BitmapOps, SnapshotApplyRefusedWhileBitmapsExist)
{
    std::string img = make(), out;
    ASSERT_EQ(sh("qemu-img snapshot -c s1 " + img, &out), 0) << out;
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    auto r = run(n->snapshot_goto("s1"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Device has active dirty bitmaps");
    ASSERT_TRUE(n->persistent_bitmaps()->bitmap_remove("q0"));
    EXPECT_TRUE(run(n->snapshot_goto("s1")).ok());
    close(n);
    expect_qemu_clean(img);
}

} // namespace
