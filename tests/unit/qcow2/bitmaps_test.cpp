// Persistent dirty bitmaps made by qemu-img stay intact through Kiln:
// enabled bitmaps record Kiln's writes, disabled ones do not change, the
// in-use flag marks a session, check counts their clusters, resize resizes
// them, and stale ones (autoclear bit clear) are dropped. The bitmaps are
// read back by parsing the file (qcow2.rst "Bitmaps extension").
#include <set>

#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/bitmap_parse.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;
using kiln::block::qcow2::load_be32;
using kiln::block::qcow2::load_be64;
using kiln::block::test::parse_bitmaps;

namespace {

class Qcow2Bitmaps : public Qcow2Interop {
protected:
    std::string make()
    {
        std::string img = path("b.qcow2"), out;
        EXPECT_EQ(sh("qemu-img create -q -f qcow2 " + img + " 64M && qemu-img bitmap --add " + img
                         + " b0 && qemu-img bitmap --add -g 512k --disable " + img + " b1 && qemu-io -c 'write 1M 64k' "
                         + img,
                     &out),
                  0)
            << out;
        return img;
    }
    void expect_same_info(const std::string& img)
    {
        std::string out;
        ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0) << out;
        auto q = nlohmann::json::parse(out, nullptr, false);
        auto n = kiln_open(img, false);
        ASSERT_TRUE(n);
        EXPECT_EQ(q["format-specific"], n->format_specific_info());
    }
};

TEST_F(Qcow2Bitmaps, EnabledBitmapsRecordKilnWritesBothWays)
{
    std::string img = make();
    auto before = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(before.size(), 2u);
    EXPECT_EQ(before[0].set_bits, std::set<uint64_t>({16}));
    expect_same_info(img);
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    for (auto& b : parse_bitmaps(read_host(img), 65536))
        EXPECT_TRUE(b.flags & 1) << b.name << " is in use during the session";
    kiln_write(*n, 8 << 20, random_bytes(100, 1));
    ASSERT_TRUE(run(n->pwrite_zeroes(20 << 20, 1 << 20, RequestFlags::MayUnmap)).ok());
    ASSERT_TRUE(run(n->pdiscard(30 << 20, 128 << 10)).ok());
    close(n);
    expect_qemu_clean(img);
    auto after = parse_bitmaps(read_host(img), 65536);
    ASSERT_EQ(after.size(), 2u);
    std::set<uint64_t> want{16, 128, 480, 481};
    for (uint64_t c = 320; c < 336; ++c)
        want.insert(c);
    EXPECT_EQ(after[0].name, "b0");
    EXPECT_EQ(after[0].set_bits, want);
    EXPECT_EQ(after[0].flags, 2u); // auto, no longer in use
    EXPECT_TRUE(after[1].set_bits.empty());
    EXPECT_EQ(after[1].flags, 0u);
    expect_same_info(img);

    // QEMU loads what Kiln stored and adds its own writes.
    std::string out;
    ASSERT_EQ(sh("qemu-io -c 'write 40M 4k' " + img, &out), 0) << out;
    want.insert(640);
    EXPECT_EQ(parse_bitmaps(read_host(img), 65536)[0].set_bits, want);
    expect_qemu_clean(img);

    // Resize: the table grows with the disk.
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    ASSERT_TRUE(run(n->truncate(128 << 20, PreallocMode::Off, false)).ok());
    kiln_write(*n, 100 << 20, random_bytes(10, 2));
    close(n);
    expect_qemu_clean(img);
    want.insert(1600);
    EXPECT_EQ(parse_bitmaps(read_host(img), 65536)[0].set_bits, want);
    ASSERT_EQ(sh("qemu-io -c 'write 120M 4k' " + img, &out), 0) << out;
    expect_qemu_clean(img);
}

TEST_F(Qcow2Bitmaps, CheckCountsBitmapClustersAndRepairKeepsThem)
{
    std::string img = make();
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    auto c = run(n->check(CheckFix::All));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->leaks, 0u);
    EXPECT_EQ(c->corruptions, 0u);
    close(n);
    expect_qemu_clean(img);
    EXPECT_EQ(parse_bitmaps(read_host(img), 65536)[0].set_bits, std::set<uint64_t>({16}));
}

TEST_F(Qcow2Bitmaps, StaleBitmapsAreDroppedAndBecomeLeaks)
{
    std::string img = make();
    auto bytes = read_host(img);
    bytes[95] &= ~1; // autoclear bit 0: "a program without bitmap support wrote this"
    write_host(img, bytes);
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    EXPECT_FALSE(n->format_specific_info()["data"].contains("bitmaps"));
    close(n);
    int status = 0;
    auto j = qemu_check(img, &status);
    EXPECT_EQ(status, 3) << j.dump(); // leaks only
    auto r = kiln_open(img, true);
    ASSERT_TRUE(r);
    ASSERT_TRUE(run(r->check(CheckFix::Leaks)).ok());
    close(r);
    expect_qemu_clean(img);
    std::string out;
    ASSERT_EQ(sh("qemu-img info " + img, &out), 0);
    EXPECT_EQ(out.find("bitmaps"), std::string::npos) << out;
}

TEST_F(Qcow2Bitmaps, KilledSessionLeavesThemInUse)
{
    std::string img = make();
    {
        auto n = kiln_open(img, true);
        ASSERT_TRUE(n);
        kiln_write(*n, 0, random_bytes(10, 3));
        ASSERT_TRUE(run(n->flush()).ok());
        // dropped without close
    }
    for (auto& b : parse_bitmaps(read_host(img), 65536))
        EXPECT_TRUE(b.flags & 1) << b.name;
    std::string out;
    ASSERT_EQ(sh("qemu-img info " + img, &out), 0) << out;
    EXPECT_NE(out.find("in-use"), std::string::npos) << out;
    auto n = kiln_open(img, true); // opens; the inconsistent bitmaps stay as they are
    ASSERT_TRUE(n);
    EXPECT_FALSE(run(n->truncate(128 << 20, PreallocMode::Off, false)).ok());
    close(n);
    for (auto& b : parse_bitmaps(read_host(img), 65536))
        EXPECT_TRUE(b.flags & 1) << b.name;
}

TEST_F(Qcow2Bitmaps, HostileBitmapDirectoriesAreRefusedAsQemuRefusesThem)
{
    std::string img = make();
    auto pristine = read_host(img);
    uint32_t hdr_len = load_be32(&pristine[100]);
    size_t ext = 0;
    for (size_t p = hdr_len; load_be32(&pristine[p]);
         p += 8 + (load_be32(&pristine[p + 4]) + 7) / 8 * 8)
        if (load_be32(&pristine[p]) == 0x23852875)
            ext = p;
    ASSERT_NE(ext, 0u);
    uint64_t dir = load_be64(&pristine[ext + 24]);
    uint64_t table = load_be64(&pristine[dir]);
    struct Damage {
        size_t at;
        int bytes; // 1, 2, 4 or 8, big-endian
        uint64_t value;
        const char* message; // nullptr: opens (as in QEMU)
    };
    const Damage damage[] = {
        {ext + 4, 4, 16, "bitmaps_ext: Invalid extension length"},
        {ext + 8, 4, 0, "found bitmaps extension with zero bitmaps"},
        {ext + 8, 4, 3, "Less bitmaps found than specified in header extension"},
        {ext + 8, 4, 1, "More bitmaps found than specified in header extension"},
        {ext + 8, 4, 70000, "bitmaps_ext: Image has 70000 bitmaps, exceeding the QEMU supported maximum of 65535"},
        {ext + 12, 4, 1, "bitmaps_ext: Reserved field is not zero"},
        {ext + 16, 8, 0, "Requested bitmap directory size is zero"},
        {ext + 16, 8, 1ull << 40, "bitmaps_ext: bitmap directory size (1099511627776) exceeds the maximum "
                                  "supported size (67107840)"},
        {ext + 16, 8, 8, "Broken bitmap directory"},
        {ext + 24, 8, 0x10001, "bitmaps_ext: invalid bitmap directory offset"},
        {ext + 24, 8, 1ull << 40, "Bitmap '' doesn't satisfy the constraints"}, // past EOF reads zeroes
        {ext + 24, 8, 0, "Bitmap extra data is not supported"},                 // the header as a directory
        {dir, 8, 0x10001, "Bitmap 'b0' doesn't satisfy the constraints"},
        {dir, 8, 0, "Bitmap 'b0' doesn't satisfy the constraints"},
        {dir + 8, 4, 9, "Could not read bitmap 'b0' from image: Invalid argument"},
        {dir + 8, 4, 0xffffffff, "Bitmap 'b0' doesn't satisfy the constraints"},
        {dir + 12, 4, 6, "Bitmap 'b0' doesn't satisfy the constraints"}, // reserved flag bit
        {dir + 16, 1, 7, "Bitmap 'b0' doesn't satisfy the constraints"}, // type
        {dir + 17, 1, 40, "Bitmap 'b0' doesn't satisfy the constraints"},
        {dir + 17, 1, 8, "Bitmap 'b0' doesn't satisfy the constraints"},
        {dir + 18, 2, 0, "Bitmap '' doesn't satisfy the constraints"},
        {dir + 18, 2, 2000, "Broken bitmap directory"},
        {dir + 20, 4, 8, "Bitmap extra data is not supported"},
        {dir + 20, 4, 0x7fffffff, "Bitmap extra data is not supported"},
        {table, 8, 0x10001, "Could not read bitmap_table table from image for bitmap 'b0': Invalid argument"},
        {table, 8, 1ull << 63, "Could not read bitmap_table table from image for bitmap 'b0': Invalid argument"},
        {dir + 12, 4, 3, nullptr},        // in use: kept, never loaded
        {dir + 17, 1, 31, nullptr},       // 2 GiB granularity is valid
        {table, 8, 1ull << 40, nullptr},  // data past EOF reads as zeroes; check reports it
        {table, 8, 1, nullptr},           // "all ones" chunk
        {dir, 8, 1ull << 40, nullptr},    // table past EOF reads as zeroes
    };
    for (const Damage& d : damage) {
        auto b = pristine;
        for (int k = 0; k < d.bytes; ++k)
            b[d.at + k] = uint8_t(d.value >> (8 * (d.bytes - 1 - k)));
        for (bool rw : {false, true}) {
            write_host(img, b);
            ImageSpec spec;
            spec.filename = img;
            spec.format = "qcow2";
            spec.flags.read_write = rw;
            auto r = run(m_ctx->open_image(spec));
            if (d.message) {
                ASSERT_FALSE(r.ok()) << d.message;
                EXPECT_EQ(r.error().message(), d.message);
                continue;
            }
            ASSERT_TRUE(r.ok()) << d.at << ": " << r.error().message();
            auto node = std::move(r).value();
            if (rw)
                kiln_write(*node, 0, random_bytes(512, 7));
            (void)run(node->check(CheckFix::None));
            (void)run(node->close());
        }
    }
}

} // namespace
