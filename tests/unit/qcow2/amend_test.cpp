// qemu-img amend on qcow2: compat up and down (zero clusters expanded in
// the active state and every snapshot, without touching what a snapshot
// still reads), refcount width changes, lazy refcounts, size and backing
// file, with qemu-img check clean and content unchanged after each step.
#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

class Qcow2Amend : public Qcow2Interop {
protected:
    Result<void> amend(const std::string& img, const std::string& opts)
    {
        auto n = kiln_open(img, true);
        if (!n)
            return Error::internal("open failed");
        auto r = run(n->amend(OptionList::parse(opts).value(), AmendFlags{}));
        close(n);
        return r;
    }
    std::vector<uint8_t> view(const std::string& img, const std::string& snapshot = "")
    {
        std::string out, raw = path("v.raw");
        std::string l = snapshot.empty() ? "" : " -l snapshot.name=" + snapshot;
        EXPECT_EQ(sh("qemu-img convert" + l + " -O raw " + img + " " + raw, &out), 0) << out;
        return read_host(raw);
    }
    std::string qemu_info(const std::string& img)
    {
        std::string out;
        EXPECT_EQ(sh("qemu-img info " + img, &out), 0) << out;
        return out;
    }
};

TEST_F(Qcow2Amend, DowngradeKeepsActiveAndSnapshotContent)
{
    std::string img = path("d.qcow2"), out;
    ASSERT_EQ(sh("qemu-img create -q -f qcow2 " + img + " 4M && qemu-io -c 'write -P 1 0 1M' -c 'write -z 1M 128k' "
                 "-c 'write -z -u 2M 64k' " + img + " && qemu-img snapshot -c s " + img
                 + " && qemu-io -c 'write -z 0 64k' -c 'write -P 2 3M 64k' " + img,
                 &out),
              0)
        << out;
    auto active = view(img), snap = view(img, "s");
    ASSERT_TRUE(amend(img, "compat=0.10").ok());
    expect_qemu_clean(img);
    EXPECT_NE(qemu_info(img).find("compat: 0.10"), std::string::npos);
    EXPECT_EQ(view(img), active);
    EXPECT_EQ(view(img, "s"), snap); // QEMU 7.2 zeroes the shared cluster here
    ASSERT_TRUE(amend(img, "compat=1.1").ok());
    expect_qemu_clean(img);
    EXPECT_NE(qemu_info(img).find("compat: 1.1"), std::string::npos);
    EXPECT_EQ(view(img), active);
}

TEST_F(Qcow2Amend, DowngradeOverABackingFileAllocatesZeroes)
{
    std::string base = path("base.qcow2"), top = path("top.qcow2"), out;
    ASSERT_EQ(sh("qemu-img create -q -f qcow2 " + base + " 1M && qemu-io -c 'write -P 7 0 1M' " + base
                 + " && qemu-img create -q -f qcow2 -b " + base + " -F qcow2 " + top + " && qemu-io -c 'write -z 0 128k' "
                 + top,
                 &out),
              0)
        << out;
    auto before = view(top);
    ASSERT_TRUE(amend(top, "compat=0.10").ok());
    expect_qemu_clean(top);
    EXPECT_EQ(view(top), before);
}

TEST_F(Qcow2Amend, RefcountWidthChangesKeepTheImageConsistent)
{
    std::string img = path("r.qcow2"), out;
    kiln_create(img, 8 << 20, "cluster_size=4k");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    kiln_write(*n, 0, random_bytes(3 << 20, 1));
    SnapshotInfo sn;
    sn.name = "s";
    ASSERT_TRUE(run(n->snapshot_create(sn)).ok());
    kiln_write(*n, 1 << 20, random_bytes(100000, 2));
    close(n);
    auto active = view(img), snap = view(img, "s");
    for (const char* bits : {"8", "64", "2", "16"}) {
        SCOPED_TRACE(bits);
        auto r = amend(img, std::string("refcount_bits=") + bits);
        ASSERT_TRUE(r.ok()) << r.error().message();
        expect_qemu_clean(img);
        EXPECT_NE(qemu_info(img).find(std::string("refcount bits: ") + bits), std::string::npos);
        EXPECT_EQ(view(img), active);
        EXPECT_EQ(view(img, "s"), snap);
    }
    auto r = amend(img, "refcount_bits=1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message().find("Cannot decrease refcount entry width to 1 bits: Cluster at offset"), 0u);
    expect_qemu_clean(img);
    // The image keeps working after the change.
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    kiln_write(*n, 5 << 20, random_bytes(50000, 3));
    close(n);
    expect_qemu_clean(img);
}

TEST_F(Qcow2Amend, LazyRefcountsSizeBackingAndErrors)
{
    std::string img = path("l.qcow2");
    kiln_create(img, 1 << 20, "");
    ASSERT_TRUE(amend(img, "lazy_refcounts=on").ok());
    EXPECT_NE(qemu_info(img).find("lazy refcounts: true"), std::string::npos);
    ASSERT_TRUE(amend(img, "lazy_refcounts=off,size=2M").ok());
    std::string info = qemu_info(img);
    EXPECT_NE(info.find("lazy refcounts: false"), std::string::npos);
    EXPECT_NE(info.find("virtual size: 2 MiB"), std::string::npos);
    make_file(path("b.raw"), 2 << 20);
    ASSERT_TRUE(amend(img, "backing_file=b.raw,backing_fmt=raw").ok());
    EXPECT_NE(qemu_info(img).find("backing file: b.raw"), std::string::npos);
    expect_qemu_clean(img);

    EXPECT_EQ(amend(img, "cluster_size=4k").error().message(),
              "Invalid parameter 'cluster_size'\nThis option is only supported for image creation");
    EXPECT_EQ(amend(img, "foo=1").error().message(), "Invalid parameter 'foo'");
    EXPECT_EQ(amend(img, "compat=0.10,lazy_refcounts=on").error().message(),
              "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
    EXPECT_EQ(amend(img, "compat=0.10,refcount_bits=8").error().message(),
              "Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or "
              "greater)");
    EXPECT_EQ(amend(img, "refcount_bits=3").error().message(),
              "Refcount width must be a power of two and may not exceed 64 bits");
    EXPECT_FALSE(amend(img, "data_file=x.raw").ok());
    expect_qemu_clean(img);
}

} // namespace
