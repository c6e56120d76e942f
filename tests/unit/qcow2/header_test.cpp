// Header parsing: round trip, QEMU's messages for bad fields, and hostile
// images (mutated metadata) that must give errors, never crashes or hangs.
#include "block/qcow2/header.h"
#include "tests/unit/qcow2/fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::qcow2;
using namespace kiln::block::test;

namespace {

std::vector<uint8_t> base_image(Qcow2Env& env, const std::string& options = "size=1M")
{
    MemNode* mem = nullptr;
    auto img = env.create(options, &mem);
    auto data = pattern(200000, 1);
    EXPECT_TRUE(env.write(*img, 12345, data).ok());
    EXPECT_TRUE(env.run(img->close()).ok());
    return mem->data();
}

std::string open_error(Qcow2Env& env, std::vector<uint8_t> bytes, bool rw = false)
{
    auto r = env.open(std::move(bytes), rw);
    return r ? std::string("ok") : r.error().message();
}

} // namespace

TEST(Qcow2Header, SerializeParseRoundTripKeepsUnknownExtensions)
{
    Header h;
    h.cluster_bits = 12;
    h.size = 1 << 30;
    h.l1_size = 512;
    h.l1_table_offset = 3 << 12;
    h.refcount_table_offset = 1 << 12;
    h.refcount_table_clusters = 1;
    h.backing_file = "base.img";
    h.backing_format = "raw";
    h.other_extensions.push_back({0x23852875, {1, 2, 3, 4, 5}});
    h.autoclear_features = 1;
    auto bytes = serialize_header(h);
    ASSERT_TRUE(bytes.ok());
    std::vector<uint8_t> file = *bytes;
    file.resize(8 << 12, 0);
    auto back = parse_header(file, file.size());
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->backing_file, "base.img");
    EXPECT_EQ(back->backing_format, "raw");
    ASSERT_EQ(back->other_extensions.size(), 1u);
    EXPECT_EQ(back->other_extensions[0].type, 0x23852875u);
    EXPECT_EQ(back->other_extensions[0].data, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(back->feature_names.size(), 8u);
    EXPECT_EQ(back->header_length, 112u);
    EXPECT_EQ(back->autoclear_features, 1u);
}

TEST(Qcow2Header, BadFieldsGiveQemuMessages)
{
    Qcow2Env env;
    auto good = base_image(env);
    ASSERT_EQ(open_error(env, good), "ok");
    auto with = [&](auto mutate) {
        auto b = good;
        mutate(b);
        return open_error(env, b);
    };
    EXPECT_EQ(with([](auto& b) { b[0] = 'X'; }), "Image is not in qcow2 format");
    EXPECT_EQ(with([](auto& b) { b.resize(50); }), "Image is not in qcow2 format");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[4], 4); }), "Unsupported qcow2 version 4");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[20], 8); }), "Unsupported cluster size: 2^8");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[20], 22); }), "Unsupported cluster size: 2^22");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[96], 7); }),
              "Reference count entry width too large; may not exceed 64 bits");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[100], 96); }), "qcow2 header too short");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[36], 0x10000000); }), "Active L1 table too large");
    EXPECT_EQ(with([](auto& b) { store_be64(&b[40], 0x30001); }), "Active L1 table offset invalid");
    EXPECT_EQ(with([](auto& b) { store_be64(&b[40], 1ull << 40); }), "Active L1 table lies past the end of the file");
    EXPECT_EQ(with([](auto& b) { store_be64(&b[48], 0x10200); }), "Reference count table offset invalid");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[56], 1000); }), "Reference count table too large");
    EXPECT_EQ(with([](auto& b) { store_be64(&b[24], 1ull << 40); }), "L1 table is too small");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[32], 2); }), "Missing CRYPTO header for crypt method 2");
    EXPECT_EQ(with([](auto& b) { b[79] |= 0x20; }), "Unsupported qcow2 feature(s): Unknown incompatible feature: 20");
    EXPECT_EQ(with([](auto& b) { b[79] |= 0x04; }), "'data-file' is required for this image");
    EXPECT_EQ(with([](auto& b) { store_be32(&b[116], 0x100000); }).find("qcow2_read_extension"), 0u);
    EXPECT_EQ(with([](auto& b) { store_be32(&b[60], 100000); }), "Snapshot table too large");
}

TEST(Qcow2Header, L2TableAtTheHeaderIsAnError)
{
    Qcow2Env env;
    auto b = base_image(env);
    store_be64(&b[3 * 65536], 0 | k_oflag_copied | 512);
    auto img = env.open(b, false);
    ASSERT_TRUE(img.ok());
    std::vector<uint8_t> buf(4096);
    auto r = env.run((*img)->preadv(0, QIov(buf.data(), buf.size())));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("L2 table offset"), std::string::npos) << r.error().message();
}

TEST(Qcow2Header, RandomMutationsNeverCrash)
{
    Qcow2Env env;
    auto good = base_image(env, "size=1M,cluster_size=4k");
    std::mt19937 rng(2024);
    int opened = 0;
    for (int iter = 0; iter < 300; ++iter) {
        auto b = good;
        int flips = 1 + rng() % 8;
        for (int f = 0; f < flips; ++f) {
            // Aim at metadata: header, refcount table/block, L1, L2.
            size_t cluster = rng() % 6;
            size_t at = cluster * 4096 + rng() % 4096;
            if (at < b.size())
                b[at] = uint8_t(rng());
        }
        auto img = env.open(b, false);
        if (!img)
            continue;
        ++opened;
        std::vector<uint8_t> buf(64 << 10);
        for (uint64_t off = 0; off < (*img)->size_bytes() && off < (4u << 20); off += buf.size()) {
            uint64_t n = std::min<uint64_t>(buf.size(), (*img)->size_bytes() - off);
            (void)env.run((*img)->preadv(off, QIov(buf.data(), n)));
        }
        (void)env.run((*img)->check(CheckFix::None));
        (void)env.run((*img)->block_status(0, (*img)->size_bytes()));
    }
    EXPECT_GT(opened, 10);
}

TEST(Qcow2Header, SnapshotTableRoundTrip)
{
    qcow2::Snapshot a;
    a.l1_table_offset = 0x50000;
    a.l1_size = 2;
    a.info.id = "1";
    a.info.name = "first";
    a.info.date_sec = 1700000000;
    a.info.vm_clock_nsec = 123;
    a.info.disk_size = 1 << 20;
    a.info.icount = 77;
    qcow2::Snapshot b = a;
    b.info.id = "2";
    b.info.name = "second snapshot";
    auto raw = serialize_snapshot_table({a, b});
    EXPECT_EQ(raw.size() % 8, 0u);
    auto back = parse_snapshot_table(raw, 2);
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(back->size(), 2u);
    EXPECT_EQ((*back)[1].info.name, "second snapshot");
    EXPECT_EQ((*back)[0].info.icount, 77u);
    EXPECT_EQ((*back)[0].info.disk_size, 1u << 20);
    EXPECT_FALSE(parse_snapshot_table(std::span<const uint8_t>(raw.data(), 50), 2).ok());
}
