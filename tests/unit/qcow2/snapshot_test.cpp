// Internal snapshots and VM state, checked against qemu-img/qemu-io in both
// directions: snapshots Kiln makes are listed, read, applied and deleted by
// QEMU (and the other way round), `qemu-img check` is clean after every
// step, and hostile snapshot tables fail with clean errors.
#include <random>

#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

uint64_t load_be64_at(const std::vector<uint8_t>& b, uint64_t at) { return qcow2::load_be64(&b.at(at + 7) - 7); }

void store_at(std::vector<uint8_t>& b, uint64_t at, uint64_t v, int width)
{
    if (width == 8)
        qcow2::store_be64(&b.at(at + 7) - 7, v);
    else
        qcow2::store_be32(&b.at(at + 3) - 3, uint32_t(v));
}

class Qcow2Snapshot : public Qcow2Interop {
protected:
    SnapshotInfo info(const std::string& name, uint64_t vm_state = 0)
    {
        SnapshotInfo sn;
        sn.name = name;
        sn.date_sec = 1700000000;
        sn.vm_state_size = vm_state;
        sn.vm_clock_nsec = 3723004000000ull;
        sn.icount = 0;
        return sn;
    }

    void create(BlockNode& n, const std::string& name, uint64_t vm_state = 0)
    {
        auto r = run(n.snapshot_create(info(name, vm_state)));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }

    void kiln_check_clean(BlockNode& n)
    {
        auto c = run(n.check(CheckFix::None));
        ASSERT_TRUE(c.ok()) << c.error().message();
        EXPECT_EQ(c->corruptions, 0u);
        EXPECT_EQ(c->leaks, 0u);
        for (auto& m : c->messages)
            ADD_FAILURE() << m;
    }

    // The guest view of `img` (active or a snapshot) as qemu-img converts it.
    std::vector<uint8_t> qemu_view(const std::string& img, const std::string& snapshot = "")
    {
        std::string out, raw = path("view.raw");
        std::string l = snapshot.empty() ? "" : " -l snapshot.name=" + snapshot;
        EXPECT_EQ(sh("qemu-img convert -f qcow2" + l + " -O raw " + img + " " + raw, &out), 0) << out;
        return read_host(raw);
    }

    void write_pattern(std::vector<uint8_t>& shadow, BlockNode& n, uint32_t seed, int count)
    {
        std::mt19937 rng(seed);
        for (int i = 0; i < count; ++i) {
            uint64_t len = 1 + rng() % 100000;
            uint64_t off = rng() % (shadow.size() - len);
            auto data = random_bytes(len, seed * 1000 + i);
            kiln_write(n, off, data);
            std::copy(data.begin(), data.end(), shadow.begin() + off);
        }
    }
};

class Qcow2SnapshotOptions : public Qcow2Snapshot, public ::testing::WithParamInterface<const char*> {};

TEST_P(Qcow2SnapshotOptions, KilnCreatesQemuReadsAppliesAndDeletes)
{
    const uint64_t size = 4 << 20;
    std::string img = path("k.qcow2");
    kiln_create(img, size, GetParam());
    std::vector<uint8_t> a(size, 0);
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    write_pattern(a, *n, 1, 30);
    create(*n, "first");
    kiln_check_clean(*n);
    std::vector<uint8_t> b = a;
    write_pattern(b, *n, 2, 30);
    EXPECT_EQ(kiln_read(*n, 0, size), b);
    create(*n, "second");
    std::vector<uint8_t> c = b;
    write_pattern(c, *n, 3, 10);
    kiln_check_clean(*n);
    close(n);

    expect_qemu_clean(img);
    std::string out;
    ASSERT_EQ(sh("qemu-img snapshot -l " + img, &out), 0) << out;
    EXPECT_NE(out.find("first"), std::string::npos) << out;
    EXPECT_NE(out.find("second"), std::string::npos) << out;
    EXPECT_EQ(qemu_view(img, "first"), a);
    EXPECT_EQ(qemu_view(img, "second"), b);
    EXPECT_EQ(qemu_view(img), c);

    // QEMU writes on top of Kiln's shared clusters, then reverts.
    ASSERT_EQ(sh("qemu-io -c 'write -P 0x5a 100k 200k' " + img, &out), 0) << out;
    expect_qemu_clean(img);
    ASSERT_EQ(sh("qemu-img snapshot -a first " + img, &out), 0) << out;
    expect_qemu_clean(img);
    EXPECT_EQ(qemu_view(img), a);

    // Kiln reverts to the other one and deletes the first.
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    ASSERT_TRUE(run(n->snapshot_goto("second")).ok());
    EXPECT_EQ(kiln_read(*n, 0, size), b);
    kiln_check_clean(*n);
    ASSERT_TRUE(run(n->snapshot_delete("1", "first")).ok());
    kiln_check_clean(*n);
    write_pattern(b, *n, 4, 10);
    close(n);
    expect_qemu_clean(img);
    EXPECT_EQ(qemu_view(img), b);
    ASSERT_EQ(sh("qemu-img snapshot -d second " + img, &out), 0) << out;
    expect_qemu_clean(img);
    EXPECT_EQ(qemu_view(img), b);
}

INSTANTIATE_TEST_SUITE_P(Options, Qcow2SnapshotOptions,
                         ::testing::Values("cluster_size=64k", "cluster_size=512", "compat=0.10",
                                           "refcount_bits=4,cluster_size=4k", "refcount_bits=64",
                                           "lazy_refcounts=on", "cluster_size=2M"));

TEST_F(Qcow2Snapshot, QemuCreatesKilnAppliesAndDeletes)
{
    const uint64_t size = 4 << 20;
    std::string img = path("q.qcow2"), out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 " + img + " 4M", &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -c 'write -P 0x11 0 1M' -c 'write -c -P 0x22 2M 128k' " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -c one " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -c 'write -P 0x33 512k 1M' -c 'write -z 2M 64k' " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -c two " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -c 'write -P 0x44 3M 64k' " + img, &out), 0) << out;
    auto one = qemu_view(img, "one"), two = qemu_view(img, "two"), now = qemu_view(img);

    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    ASSERT_EQ(n->snapshots().size(), 2u);
    ASSERT_TRUE(run(n->snapshot_goto("one")).ok());
    EXPECT_EQ(kiln_read(*n, 0, size), one);
    kiln_check_clean(*n);
    auto d = random_bytes(70000, 9);
    kiln_write(*n, 2 << 20, d); // over a compressed cluster shared with "one"
    std::copy(d.begin(), d.end(), one.begin() + (2 << 20));
    ASSERT_TRUE(run(n->snapshot_delete("2", "two")).ok());
    kiln_check_clean(*n);
    create(*n, "three");
    EXPECT_EQ(n->snapshots().back().id, "2"); // max id + 1, as QEMU
    close(n);

    expect_qemu_clean(img);
    EXPECT_EQ(qemu_view(img), one);
    EXPECT_EQ(qemu_view(img, "three"), one);
    ASSERT_EQ(sh("qemu-img snapshot -l " + img, &out), 0) << out;
    EXPECT_EQ(out.find("two"), std::string::npos) << out;
    ASSERT_EQ(sh("qemu-img snapshot -d one " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -d three " + img, &out), 0) << out;
    expect_qemu_clean(img);
    (void)now;
}

TEST_F(Qcow2Snapshot, ResizedDiskRevertsToEachSnapshotsSize)
{
    std::string img = path("r.qcow2");
    kiln_create(img, 1 << 20, "");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    std::vector<uint8_t> small(1 << 20, 0);
    write_pattern(small, *n, 5, 10);
    create(*n, "small");
    ASSERT_TRUE(run(n->truncate(3 << 20, PreallocMode::Off, false)).ok());
    std::vector<uint8_t> big(3 << 20, 0);
    std::copy(small.begin(), small.end(), big.begin());
    write_pattern(big, *n, 6, 10);
    create(*n, "big");
    ASSERT_TRUE(run(n->snapshot_goto("small")).ok());
    EXPECT_EQ(n->size_bytes(), 1u << 20);
    EXPECT_EQ(kiln_read(*n, 0, 1 << 20), small);
    kiln_check_clean(*n);
    close(n);
    expect_qemu_clean(img);
    std::string out;
    ASSERT_EQ(sh("qemu-img snapshot -a big " + img, &out), 0) << out;
    EXPECT_EQ(qemu_view(img), big);
    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->snapshots()[1].disk_size, 3u << 20);
    ASSERT_TRUE(run(n->snapshot_goto("small")).ok());
    ASSERT_TRUE(run(n->snapshot_goto("2")).ok());
    EXPECT_EQ(n->size_bytes(), 3u << 20);
    EXPECT_EQ(kiln_read(*n, 0, 3 << 20), big);
    close(n);
    expect_qemu_clean(img);
}

TEST_F(Qcow2Snapshot, VmStateIsSavedWithTheSnapshotAndLoadedAfterRevert)
{
    std::string img = path("vm.qcow2");
    kiln_create(img, 3 << 20, "");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    std::vector<uint8_t> disk(3 << 20, 0);
    write_pattern(disk, *n, 7, 5);
    auto state = random_bytes(300000, 77);
    ASSERT_TRUE(run(n->save_vmstate(0, QIov(state.data(), 200000))).ok());
    ASSERT_TRUE(run(n->save_vmstate(200000, QIov(state.data() + 200000, 100000))).ok());
    create(*n, "vm", state.size());
    kiln_check_clean(*n);
    // The active tree no longer holds the state (QEMU drops it there too).
    std::vector<uint8_t> after(state.size());
    ASSERT_TRUE(run(n->load_vmstate(0, QIov(after.data(), after.size()))).ok());
    EXPECT_EQ(after, std::vector<uint8_t>(state.size(), 0));
    write_pattern(disk, *n, 8, 5);
    close(n);
    expect_qemu_clean(img);
    std::string out;
    ASSERT_EQ(sh("qemu-img info " + img, &out), 0) << out;
    EXPECT_NE(out.find("293 KiB 2023-11-14"), std::string::npos) << out; // VM SIZE, DATE
    EXPECT_NE(out.find("01:02:03.004"), std::string::npos) << out;     // VM CLOCK

    n = kiln_open(img, true);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->snapshots()[0].vm_state_size, state.size());
    ASSERT_TRUE(run(n->snapshot_goto("vm")).ok());
    std::vector<uint8_t> loaded(state.size());
    ASSERT_TRUE(run(n->load_vmstate(0, QIov(loaded.data(), loaded.size()))).ok());
    EXPECT_EQ(loaded, state);
    ASSERT_TRUE(run(n->snapshot_delete("1", "vm")).ok());
    kiln_check_clean(*n);
    close(n);
    expect_qemu_clean(img);
}

TEST_F(Qcow2Snapshot, ManySnapshotsDeletedInRandomOrderKeepEveryView)
{
    const uint64_t size = 2 << 20;
    std::string img = path("m.qcow2");
    kiln_create(img, size, "cluster_size=4k");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    std::vector<uint8_t> shadow(size, 0);
    std::vector<std::vector<uint8_t>> views;
    for (int i = 0; i < 8; ++i) {
        write_pattern(shadow, *n, 20 + i, 6);
        create(*n, "s" + std::to_string(i));
        views.push_back(shadow);
    }
    std::vector<int> order{5, 0, 7, 2, 6, 1, 4, 3};
    std::vector<bool> alive(8, true);
    for (int k : order) {
        ASSERT_TRUE(run(n->snapshot_delete("", "s" + std::to_string(k))).ok());
        alive[k] = false;
        kiln_check_clean(*n);
        for (int i = 0; i < 8; ++i) {
            if (!alive[i])
                continue;
            ASSERT_TRUE(run(n->snapshot_goto("s" + std::to_string(i))).ok());
            EXPECT_EQ(kiln_read(*n, 0, size), views[i]) << "snapshot s" << i;
        }
        if (k == 2) {
            close(n);
            expect_qemu_clean(img);
            n = kiln_open(img, true);
            ASSERT_TRUE(n);
        }
    }
    EXPECT_TRUE(n->snapshots().empty());
    close(n);
    expect_qemu_clean(img);
}

TEST_F(Qcow2Snapshot, ErrorsNameTheProblem)
{
    std::string img = path("e.qcow2");
    kiln_create(img, 1 << 20, "");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    auto r = run(n->snapshot_goto("missing"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), ENOENT);
    r = run(n->snapshot_delete("", "missing"));
    ASSERT_FALSE(r.ok());
    auto sn = info("x");
    sn.id = "7";
    ASSERT_TRUE(run(n->snapshot_create(sn)).ok());
    r = run(n->snapshot_create(sn));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), EEXIST);
    create(*n, "next");
    EXPECT_EQ(n->snapshots().back().id, "8");
    close(n);
    n = kiln_open(img, false);
    ASSERT_TRUE(n);
    EXPECT_EQ(run(n->snapshot_create(info("ro"))).error().kind(), ErrorKind::PermissionDenied);
}

TEST_F(Qcow2Snapshot, OneBitRefcountsRefuseSnapshotsAndStayClean)
{
    std::string img = path("r1.qcow2");
    kiln_create(img, 1 << 20, "refcount_bits=1");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    kiln_write(*n, 0, random_bytes(70000, 3));
    auto r = run(n->snapshot_create(info("s")));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), EINVAL); // qemu-img: -22 (Invalid argument)
    EXPECT_TRUE(n->snapshots().empty());
    close(n);
    expect_qemu_clean(img); // QEMU leaks a cluster here; Kiln checks first
}

// Hostile snapshot tables: every bad pointer is refused before anything is
// written, so the image stays as it was.
TEST_F(Qcow2Snapshot, HostileSnapshotEntriesFailCleanly)
{
    std::string img = path("h.qcow2"), out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 " + img + " 1M", &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -c 'write -P 1 0 256k' " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -c s " + img, &out), 0) << out;
    auto pristine = read_host(img);
    uint64_t table = load_be64_at(pristine, 64);
    uint64_t l1 = load_be64_at(pristine, table);
    uint64_t l2 = load_be64_at(pristine, l1) & 0x00fffffffffffe00ull;
    struct Damage {
        uint64_t at;
        uint64_t value;
        int width;
    };
    std::vector<Damage> cases = {
        {table, l1 + 8, 8},                  // L1 unaligned
        {table, 1ull << 50, 8},              // L1 past EOF
        {table + 8, 0x10000000, 4},          // L1 too large
        {l1, 0x8000000000000000ull | (1ull << 40), 8}, // L2 past EOF
        {l1, 0x8000000000000000ull | 0x200, 8},      // L2 unaligned
        {l2, 0x8000000000000000ull | (1ull << 45), 8}, // data without refcount block
    };
    for (size_t i = 0; i < cases.size(); ++i) {
        auto bytes = pristine;
        store_at(bytes, cases[i].at, cases[i].value, cases[i].width);
        write_host(img, bytes);
        auto n = kiln_open(img, true);
        if (!n)
            continue; // refused at open: fine too
        auto g = run(n->snapshot_goto("s"));
        EXPECT_FALSE(g.ok()) << "case " << i;
        auto d = run(n->snapshot_delete("", "s"));
        EXPECT_FALSE(d.ok()) << "case " << i;
        close(n);
        auto after = read_host(img);
        // Only the header may differ (nothing else was written).
        EXPECT_TRUE(std::equal(after.begin() + 4096, after.end(), bytes.begin() + 4096)) << "case " << i;
    }
}

} // namespace
