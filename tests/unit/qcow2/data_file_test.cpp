// External data files on real files: data at guest offsets, the raw mode's
// invariant (the data file reads as the disk), resize, options at open,
// and hostile headers and L2 entries (clean errors, never crashes).
#include <fstream>
#include <random>

#include "block/qcow2/header.h"
#include "block/qcow2/qcow2_node.h"
#include "tests/unit/block/block_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::qcow2;
using namespace kiln::block::test;

namespace {

std::vector<uint8_t> bytes_of(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void store(const std::string& p, const std::vector<uint8_t>& b)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<uint8_t> noise(size_t len, uint32_t seed)
{
    std::vector<uint8_t> v(len);
    std::mt19937 rng(seed);
    for (auto& b : v)
        b = uint8_t(rng() | 1);
    return v;
}

class Qcow2DataFile : public BlockFixture {
protected:
    Result<void> create(const std::string& name, uint64_t size, const std::string& options)
    {
        return run(m_ctx->create_image("qcow2", path(name), size, OptionList::parse(options).value()));
    }
    Result<std::unique_ptr<BlockNode>> open(const std::string& name, bool rw, const std::string& options = "")
    {
        ImageSpec spec;
        spec.filename = path(name);
        spec.format = "qcow2";
        spec.options = OptionList::parse(options).value();
        spec.flags.read_write = rw;
        return run(m_ctx->open_image(spec));
    }
    std::string open_error(const std::string& name, const std::string& options = "")
    {
        auto r = open(name, false, options);
        return r ? std::string("ok") : r.error().message();
    }
    // Rewrites the header of an image (data file name, feature bits).
    template<typename F>
    void edit_header(const std::string& name, F change)
    {
        auto b = bytes_of(path(name));
        Header h = parse_header(b, b.size()).value();
        change(h);
        auto out = serialize_header(h);
        ASSERT_TRUE(out.ok()) << out.error().message();
        std::fill(b.begin(), b.begin() + 65536, 0);
        std::copy(out->begin(), out->end(), b.begin());
        store(path(name), b);
    }
    // Offset of the first L2 table of an image file.
    uint64_t first_l2(const std::vector<uint8_t>& b) { return load_be64(&b[load_be64(&b[40])]) & k_l1e_offset_mask; }
};

} // namespace

TEST_F(Qcow2DataFile, DataGoesToTheDataFileAtGuestOffsets)
{
    ASSERT_TRUE(create("a.qcow2", 4 << 20, "data_file=" + path("a.raw")).ok());
    auto img = open("a.qcow2", true);
    ASSERT_TRUE(img.ok()) << img.error().message();
    auto d = noise(5000, 1);
    ASSERT_TRUE(run((*img)->pwritev(1048676, QIov(d.data(), d.size()), RequestFlags::None)).ok());
    ASSERT_TRUE(run((*img)->close()).ok());
    auto raw = bytes_of(path("a.raw"));
    ASSERT_EQ(raw.size(), 4u << 20); // the data file follows the virtual size
    EXPECT_TRUE(std::equal(d.begin(), d.end(), raw.begin() + 1048676));
    EXPECT_LT(bytes_of(path("a.qcow2")).size(), 1u << 20); // only metadata there
    img->reset();
    img = open("a.qcow2", true);
    ASSERT_TRUE(img.ok()) << img.error().message();
    std::vector<uint8_t> back(5000);
    ASSERT_TRUE(run((*img)->preadv(1048676, QIov(back.data(), back.size()))).ok());
    EXPECT_EQ(back, d);
    auto c = run((*img)->check(CheckFix::None));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->corruptions + c->leaks, 0u);
    ASSERT_TRUE(run((*img)->truncate(8 << 20, PreallocMode::Off, false)).ok());
    EXPECT_EQ(bytes_of(path("a.raw")).size(), 8u << 20);
    // Compression and snapshots are refused, as in QEMU.
    EXPECT_FALSE((*img)->supports_compressed_writes());
    SnapshotInfo sn;
    sn.name = "x";
    auto s = run((*img)->snapshot_create(sn));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().errno_value(), ENOTSUP);
}

TEST_F(Qcow2DataFile, RawDataFileAlwaysReadsAsTheDisk)
{
    for (const char* extra : {"", ",extended_l2=on"}) {
        ASSERT_TRUE(create("r.qcow2", 2 << 20, "data_file=" + path("r.raw") + ",data_file_raw=on" + extra).ok());
        auto img = open("r.qcow2", true);
        ASSERT_TRUE(img.ok()) << img.error().message();
        std::mt19937 rng(5);
        for (int i = 0; i < 80; ++i) {
            uint64_t len = 1 + rng() % 150000;
            uint64_t off = rng() % ((2 << 20) - len);
            Result<void> r = ok();
            if (i % 4 == 0) {
                r = run((*img)->pwrite_zeroes(off & ~511ull, (len + 511) & ~511ull, RequestFlags::MayUnmap));
            } else if (i % 4 == 1) {
                r = run((*img)->pdiscard(off & ~511ull, (len + 511) & ~511ull));
            } else {
                auto d = noise(len, uint32_t(i));
                r = run((*img)->pwritev(off, QIov(d.data(), d.size()), RequestFlags::None));
            }
            ASSERT_TRUE(r.ok()) << r.error().message();
        }
        std::vector<uint8_t> disk(2 << 20);
        ASSERT_TRUE(run((*img)->preadv(0, QIov(disk.data(), disk.size()))).ok());
        ASSERT_TRUE(run((*img)->close()).ok());
        EXPECT_TRUE(bytes_of(path("r.raw")) == disk) << extra;
        EXPECT_EQ(load_be64(&bytes_of(path("r.qcow2"))[88]) & k_autoclear_data_file_raw, k_autoclear_data_file_raw);
    }
}

TEST_F(Qcow2DataFile, OpenOptionsNameAnotherDataFile)
{
    ASSERT_TRUE(create("o.qcow2", 1 << 20, "data_file=" + path("o.raw")).ok());
    std::rename(path("o.raw").c_str(), path("moved.raw").c_str());
    EXPECT_EQ(open_error("o.qcow2"), "Could not open '" + path("o.raw") + "': No such file or directory");
    EXPECT_EQ(open_error("o.qcow2", "data-file.filename=" + path("moved.raw")), "ok");
    ASSERT_TRUE(create("plain.qcow2", 1 << 20, "").ok());
    EXPECT_EQ(open_error("plain.qcow2", "data-file.filename=" + path("moved.raw")),
              "'data-file' can only be set for images with an external data file");
}

TEST_F(Qcow2DataFile, HostileHeadersGiveCleanErrors)
{
    ASSERT_TRUE(create("h.qcow2", 1 << 20, "data_file=" + path("h.raw")).ok());
    auto good = bytes_of(path("h.qcow2"));
    auto reset = [&] { store(path("h.qcow2"), good); };

    edit_header("h.qcow2", [](Header& h) { h.data_file.clear(); });
    EXPECT_EQ(open_error("h.qcow2"), "'data-file' is required for this image");
    reset();
    edit_header("h.qcow2", [](Header& h) {
        h.incompatible_features &= ~k_incompat_data_file;
        h.data_file.clear();
        h.autoclear_features |= k_autoclear_data_file_raw;
    });
    EXPECT_EQ(open_error("h.qcow2"), "data-file-raw requires a data file");
    reset();
    // The name is a C string in QEMU: it ends at a NUL inside it.
    edit_header("h.qcow2", [&](Header& h) { h.data_file = path("nul.raw") + std::string("\0tail", 5); });
    EXPECT_EQ(open_error("h.qcow2"), "Could not open '" + path("nul.raw") + "': No such file or directory");
    reset();
    edit_header("h.qcow2", [](Header& h) { h.data_file = std::string(5000, 'n'); });
    std::string err = open_error("h.qcow2");
    EXPECT_NE(err.find("File name too long"), std::string::npos) << err;
    reset();
    edit_header("h.qcow2", [](Header& h) { h.data_file = "/dev/null/not-a-dir"; });
    EXPECT_EQ(open_error("h.qcow2"), "Could not open '/dev/null/not-a-dir': Not a directory");
    reset();
    // An extension that claims more bytes than the header cluster has.
    auto b = good;
    for (size_t at = 112; at + 8 < 4096;) {
        uint32_t type = load_be32(&b[at]), len = load_be32(&b[at + 4]);
        if (type == k_ext_data_file) {
            store_be32(&b[at + 4], 0x7fffffff);
            break;
        }
        if (type == 0)
            break;
        at += 8 + align_up(len, 8);
    }
    store(path("h.qcow2"), b);
    EXPECT_NE(open_error("h.qcow2"), "ok");
}

TEST_F(Qcow2DataFile, L2EntriesAwayFromGuestOffsetsAreRefused)
{
    ASSERT_TRUE(create("m.qcow2", 1 << 20, "data_file=" + path("m.raw")).ok());
    {
        auto img = open("m.qcow2", true);
        ASSERT_TRUE(img.ok());
        auto d = noise(65536 * 3, 2);
        ASSERT_TRUE(run((*img)->pwritev(0, QIov(d.data(), d.size()), RequestFlags::None)).ok());
        ASSERT_TRUE(run((*img)->close()).ok());
    }
    auto b = bytes_of(path("m.qcow2"));
    uint64_t l2 = first_l2(b);
    store_be64(&b[l2], k_oflag_copied | 0x30000);
    store_be64(&b[l2 + 8], k_oflag_compressed | 0x30000);
    store(path("m.qcow2"), b);
    auto img = open("m.qcow2", true);
    ASSERT_TRUE(img.ok()) << img.error().message();
    std::vector<uint8_t> buf(4096);
    auto r = run((*img)->preadv(0, QIov(buf.data(), buf.size())));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
              "External data file host cluster offset 0x30000 does not match guest cluster offset: 0, L2 index: 0)");
    auto w = run((*img)->pwritev(100, QIov(buf.data(), buf.size()), RequestFlags::None));
    EXPECT_FALSE(w.ok());
    r = run((*img)->preadv(65536, QIov(buf.data(), buf.size())));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message().find("Compressed cluster entry found in image with external data file"), 0u)
        << r.error().message();
    auto c = run((*img)->check(CheckFix::None));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->corruptions, 1u);
    ASSERT_FALSE(c->messages.empty());
    EXPECT_EQ(c->messages[0].find("ERROR compressed cluster 1 with data file"), 0u) << c->messages[0];
    // Cluster 2 is intact and still reads.
    EXPECT_TRUE(run((*img)->preadv(2 * 65536, QIov(buf.data(), buf.size()))).ok());
}
