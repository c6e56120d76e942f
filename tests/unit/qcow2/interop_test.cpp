// Kiln <-> QEMU interop: images Kiln writes pass qemu-img check and compare
// equal to what was written; images qemu-img/qemu-io write (compressed,
// snapshots, backing chains) read back byte-identical through Kiln.
#include <iostream>

#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/interop_fixture.h"
#include "tests/unit/qcow2/requests.h"
#include "util/co_sync.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

class Qcow2KilnWrites : public Qcow2Interop, public ::testing::WithParamInterface<const char*> {};

TEST_P(Qcow2KilnWrites, QemuImgCheckAndCompareAgree)
{
    const uint64_t size = 3 << 20;
    std::string img = path("k.qcow2"), ref = path("ref.raw");
    kiln_create(img, size, GetParam());
    auto node = kiln_open(img, true);
    ASSERT_TRUE(node);
    std::vector<uint8_t> expect(size, 0);
    std::mt19937 rng(5);
    for (int i = 0; i < 40; ++i) {
        uint64_t len = 1 + rng() % 70000;
        uint64_t off = rng() % (size - len);
        auto data = random_bytes(len, i);
        kiln_write(*node, off, data);
        std::copy(data.begin(), data.end(), expect.begin() + off);
    }
    uint64_t cs = std::min<uint64_t>(node->cluster_size(), 256 << 10); // the 2M case zeroes a partial cluster
    ASSERT_TRUE(run(node->pwrite_zeroes(cs * 3, cs * 2, RequestFlags::MayUnmap)).ok());
    std::fill(expect.begin() + cs * 3, expect.begin() + cs * 5, 0);
    ASSERT_TRUE(run(node->pdiscard(cs * 8, cs)).ok());
    std::fill(expect.begin() + cs * 8, expect.begin() + cs * 9, 0);
    auto kc = run(node->check(CheckFix::None));
    ASSERT_TRUE(kc.ok());
    close(node);
    write_host(ref, expect);

    int status = 0;
    auto j = qemu_check(img, &status);
    EXPECT_EQ(status, 0) << j.dump();
    EXPECT_FALSE(j.contains("corruptions")) << j.dump();
    EXPECT_FALSE(j.contains("leaks")) << j.dump();
    // Golden counters: Kiln's check agrees with qemu-img's.
    EXPECT_EQ(j.value("image-end-offset", 0ull), kc->image_end_offset) << j.dump();
    EXPECT_EQ(j.value("total-clusters", 0ull), kc->total_clusters) << j.dump();
    EXPECT_EQ(j.value("allocated-clusters", 0ull), kc->allocated_clusters) << j.dump();
    EXPECT_EQ(j.value("fragmented-clusters", 0ull), kc->fragmented_clusters) << j.dump();
    std::string out;
    EXPECT_EQ(sh("qemu-img compare -f qcow2 -F raw " + img + " " + ref, &out), 0) << out;
    // qemu-img info agrees on the format-specific data.
    ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0) << out;
    auto info = nlohmann::json::parse(out, nullptr, false);
    auto again = kiln_open(img, false);
    ASSERT_TRUE(again);
    EXPECT_EQ(info["format-specific"], again->format_specific_info()) << out;
    EXPECT_EQ(info["virtual-size"], again->size_bytes());
    EXPECT_EQ(info["cluster-size"], again->cluster_size());
}

INSTANTIATE_TEST_SUITE_P(Options, Qcow2KilnWrites,
                         ::testing::Values("cluster_size=512", "cluster_size=4k", "cluster_size=64k",
                                           "cluster_size=2M", "compat=0.10", "compat=0.10,cluster_size=4k",
                                           "refcount_bits=1,cluster_size=1k", "refcount_bits=2", "refcount_bits=4",
                                           "refcount_bits=8", "refcount_bits=32", "refcount_bits=64,cluster_size=512",
                                           "lazy_refcounts=on", "compression_type=zstd", "preallocation=metadata",
                                           "preallocation=falloc", "preallocation=full"));

TEST_F(Qcow2Interop, BackingChainWrittenByKilnMatchesQemu)
{
    const uint64_t size = 2 << 20;
    std::string base = path("base.qcow2"), mid = path("mid.qcow2"), top = path("top.qcow2");
    std::vector<uint8_t> expect(size, 0);
    kiln_create(base, size, "");
    auto n = kiln_open(base, true);
    auto a = random_bytes(size, 1);
    kiln_write(*n, 0, a);
    expect = a;
    close(n);
    // Relative backing names, format recorded; mid takes the base's size.
    kiln_create(mid, 0, "backing_file=base.qcow2,backing_fmt=qcow2,cluster_size=4k");
    n = kiln_open(mid, true);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->size_bytes(), size);
    auto b = random_bytes(10000, 2);
    kiln_write(*n, 70000, b); // partial clusters: COW from base
    std::copy(b.begin(), b.end(), expect.begin() + 70000);
    close(n);
    kiln_create(top, size, "backing_file=mid.qcow2,backing_fmt=qcow2,compat=0.10");
    n = kiln_open(top, true);
    auto c = random_bytes(3000, 3);
    kiln_write(*n, 75000, c);
    std::copy(c.begin(), c.end(), expect.begin() + 75000);
    ASSERT_TRUE(run(n->pwrite_zeroes(1 << 20, 65536, RequestFlags::MayUnmap)).ok());
    std::fill(expect.begin() + (1 << 20), expect.begin() + (1 << 20) + 65536, 0);
    EXPECT_EQ(kiln_read(*n, 0, size), expect);
    auto st = run(n->block_status_above(0, size));
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->depth, 2); // cluster 0 comes from base
    close(n);
    for (auto& p : {base, mid, top})
        expect_qemu_clean(p);
    write_host(path("ref.raw"), expect);
    std::string out;
    EXPECT_EQ(sh("qemu-img compare -f qcow2 -F raw " + top + " " + path("ref.raw"), &out), 0) << out;
    EXPECT_EQ(sh("qemu-img info --output=json " + top + " | grep -q '\"backing-filename-format\": \"qcow2\"'", &out), 0);
}

TEST_F(Qcow2Interop, QemuWrittenImagesReadIdentically)
{
    std::string raw = path("src.raw");
    // Half random, a quarter zero, a quarter text: convert -c compresses.
    std::vector<uint8_t> src = random_bytes(4 << 20, 9);
    std::fill(src.begin() + (1 << 20), src.begin() + (2 << 20), 0);
    for (size_t i = 2 << 20; i < (3u << 20); ++i)
        src[i] = "kiln qcow2 interop text "[i % 25];
    write_host(raw, src);
    std::string out;
    struct Case {
        std::string name, cmd;
    };
    std::vector<Case> cases = {
        {"plain", "qemu-img convert -O qcow2 " + raw + " "},
        {"zlib", "qemu-img convert -c -O qcow2 " + raw + " "},
        {"zstd", "qemu-img convert -c -O qcow2 -o compression_type=zstd " + raw + " "},
        {"v2c", "qemu-img convert -c -O qcow2 -o compat=0.10,cluster_size=4k " + raw + " "},
        {"small", "qemu-img convert -O qcow2 -o cluster_size=512,refcount_bits=1 " + raw + " "},
        {"big", "qemu-img convert -c -O qcow2 -o cluster_size=2M " + raw + " "},
    };
    for (auto& c : cases) {
        std::string img = path(c.name + ".qcow2");
        ASSERT_EQ(sh(c.cmd + img, &out), 0) << out;
        ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x5a 123456 70000' -c 'write -z 3000000 65536' " + img, &out),
                  0)
            << out;
        ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("out.raw"), &out), 0) << out;
        auto expect = read_host(path("out.raw"));
        auto n = kiln_open(img, false);
        ASSERT_TRUE(n);
        EXPECT_EQ(kiln_read(*n, 0, expect.size()), expect) << c.name;
        auto kc = run(n->check(CheckFix::None));
        ASSERT_TRUE(kc.ok());
        EXPECT_EQ(kc->corruptions + kc->leaks, 0u) << c.name;
        int status = 0;
        auto j = qemu_check(img, &status);
        EXPECT_EQ(j.value("allocated-clusters", 0ull), kc->allocated_clusters) << c.name << j.dump();
        EXPECT_EQ(j.value("fragmented-clusters", 0ull), kc->fragmented_clusters) << c.name << j.dump();
        EXPECT_EQ(j.value("compressed-clusters", 0ull), kc->compressed_clusters) << c.name << j.dump();
        EXPECT_EQ(j.value("image-end-offset", 0ull), kc->image_end_offset) << c.name << j.dump();
        // Kiln then writes into it (over compressed clusters too).
        close(n);
        n = kiln_open(img, true);
        auto d = random_bytes(100000, 4);
        kiln_write(*n, (2 << 20) + 777, d);
        std::copy(d.begin(), d.end(), expect.begin() + (2 << 20) + 777);
        close(n);
        expect_qemu_clean(img);
        ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("out.raw"), &out), 0) << out;
        EXPECT_EQ(read_host(path("out.raw")), expect) << c.name;
    }
}

TEST_F(Qcow2Interop, KilnCompressedImagesAreReadByQemu)
{
    for (const char* type : {"zlib", "zstd"}) {
        std::string img = path(std::string("c-") + type + ".qcow2");
        kiln_create(img, 1 << 20, std::string("compression_type=") + type + ",cluster_size=16k");
        auto n = kiln_open(img, true);
        std::vector<uint8_t> expect(1 << 20, 0);
        for (uint64_t off = 0; off < expect.size(); off += 16384) {
            std::vector<uint8_t> data(16384);
            for (size_t i = 0; i < data.size(); ++i)
                data[i] = uint8_t(off / 16384 * 3 + i / 100);
            ASSERT_TRUE(run(n->pwritev_compressed(off, QIov(data.data(), data.size()))).ok());
            std::copy(data.begin(), data.end(), expect.begin() + off);
        }
        close(n);
        expect_qemu_clean(img);
        std::string out;
        write_host(path("ref.raw"), expect);
        EXPECT_EQ(sh("qemu-img compare -f qcow2 -F raw " + img + " " + path("ref.raw"), &out), 0) << out;
        int status = 0;
        auto j = qemu_check(img, &status);
        EXPECT_EQ(j.value("compressed-clusters", 0ull), 64u) << j.dump();
    }
}

TEST_F(Qcow2Interop, InternalSnapshotsFromQemu)
{
    std::string img = path("snap.qcow2");
    std::string out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 " + img + " 2M", &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x11 0 1M' " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -c first " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x22 65536 100000' " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img snapshot -c second " + img, &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x33 0 4096' " + img, &out), 0) << out;

    auto n = kiln_open(img, false);
    ASSERT_TRUE(n);
    auto snaps = n->snapshots();
    ASSERT_EQ(snaps.size(), 2u);
    EXPECT_EQ(snaps[0].name, "first");
    EXPECT_EQ(snaps[1].id, "2");
    EXPECT_EQ(snaps[1].disk_size, 2u << 20);
    auto kc = run(n->check(CheckFix::None));
    ASSERT_TRUE(kc.ok());
    EXPECT_EQ(kc->corruptions + kc->leaks, 0u);
    ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("cur.raw"), &out), 0) << out;
    EXPECT_EQ(kiln_read(*n, 0, 2 << 20), read_host(path("cur.raw")));
    close(n);
    std::vector<uint8_t> snapshot_first;
    for (const char* s : {"first", "second"}) {
        ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw -l " + std::string(s) + " " + img + " " + path("s.raw"), &out),
                  0)
            << out;
        auto m = kiln_open(img, false);
        ASSERT_TRUE(run(m->snapshot_load_tmp("", s)).ok());
        EXPECT_EQ(kiln_read(*m, 0, 2 << 20), read_host(path("s.raw"))) << s;
        if (std::string(s) == "first")
            snapshot_first = read_host(path("s.raw"));
        close(m);
    }
    // Writing through Kiln copies shared L2 tables and clusters.
    n = kiln_open(img, true);
    std::vector<uint8_t> expect = read_host(path("cur.raw"));
    auto d = random_bytes(200000, 8);
    kiln_write(*n, 30000, d);
    std::copy(d.begin(), d.end(), expect.begin() + 30000);
    close(n);
    expect_qemu_clean(img);
    ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("cur2.raw"), &out), 0) << out;
    EXPECT_EQ(read_host(path("cur2.raw")), expect);
    ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw -l first " + img + " " + path("s2.raw"), &out), 0) << out;
    EXPECT_EQ(read_host(path("s2.raw")), snapshot_first); // the snapshot is untouched
}

TEST_F(Qcow2Interop, ManyWritesInFlightOnARealFile)
{
    const uint64_t size = 4 << 20;
    std::string img = path("conc.qcow2");
    kiln_create(img, size, "cluster_size=4k");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    std::vector<uint8_t> expect;
    auto reqs = disjoint_requests(size, 128, 40, 77, expect);
    CoWaitGroup group(*m_loop);
    int failures = 0;
    auto one = [&](size_t i) -> Task<void> {
        auto& r = reqs[i];
        auto res = co_await n->pwritev(r.offset, QIov(r.data.data(), r.data.size()), RequestFlags::None);
        failures += !res;
        group.done();
    };
    auto all = [&]() -> Task<void> {
        for (size_t i = 0; i < reqs.size(); ++i) {
            group.add();
            spawn(one(i));
        }
        co_await group.wait_idle();
    };
    run(all());
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(kiln_read(*n, 0, size), expect);
    close(n);
    expect_qemu_clean(img);
    write_host(path("ref.raw"), expect);
    std::string out;
    EXPECT_EQ(sh("qemu-img compare -f qcow2 -F raw " + img + " " + path("ref.raw"), &out), 0) << out;
}

TEST_F(Qcow2Interop, ResizeMatchesQemu)
{
    std::string img = path("r.qcow2");
    kiln_create(img, 1 << 20, "cluster_size=512");
    auto n = kiln_open(img, true);
    auto d = random_bytes(1 << 20, 3);
    kiln_write(*n, 0, d);
    ASSERT_TRUE(run(n->truncate(300 << 20, PreallocMode::Off, false)).ok());
    kiln_write(*n, (300 << 20) - 512, random_bytes(512, 4));
    close(n);
    expect_qemu_clean(img);
    std::string out;
    ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0);
    EXPECT_EQ(nlohmann::json::parse(out)["virtual-size"], 300u << 20);
    n = kiln_open(img, true);
    ASSERT_TRUE(run(n->truncate(512 << 10, PreallocMode::Off, true)).ok());
    close(n);
    expect_qemu_clean(img);
    d.resize(512 << 10);
    write_host(path("ref.raw"), d);
    EXPECT_EQ(sh("qemu-img compare -f qcow2 -F raw " + img + " " + path("ref.raw"), &out), 0) << out;
}

TEST_F(Qcow2Interop, ExtendedL2ImagesFromQemuReadIdentically)
{
    std::string base = path("xbase.qcow2"), img = path("x.qcow2");
    std::string out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 " + base + " 4M", &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x77 0 4M' " + base, &out), 0) << out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 -o extended_l2=on,cluster_size=64k -b xbase.qcow2 -F qcow2 " + img, &out),
              0)
        << out;
    // Partial subclusters (2 KiB each), zeroed subclusters, compressed-free.
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x11 1000 3000' -c 'write -z 65536 8192' -c 'write -P 0x22 "
                 "200000 100000' -c 'discard 1048576 65536' " +
                     img,
                 &out),
              0)
        << out;
    ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("x.raw"), &out), 0) << out;
    auto n = kiln_open(img, false);
    ASSERT_TRUE(n);
    EXPECT_EQ(kiln_read(*n, 0, 4 << 20), read_host(path("x.raw")));
    auto st = run(n->block_status(65536, 65536));
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->flags, uint32_t(BlockStatus::Zero | BlockStatus::Allocated));
    EXPECT_EQ(st->bytes, 8192u);
    auto kc = run(n->check(CheckFix::None));
    ASSERT_TRUE(kc.ok());
    EXPECT_EQ(kc->corruptions + kc->leaks, 0u);
    int status = 0;
    auto j = qemu_check(img, &status);
    EXPECT_EQ(j.value("allocated-clusters", 0ull), kc->allocated_clusters) << j.dump();
    EXPECT_EQ(j.value("image-end-offset", 0ull), kc->image_end_offset) << j.dump();
    EXPECT_EQ(n->format_specific_info()["data"]["extended-l2"], true);
    close(n);
    // Kiln writes into it (subclusters over the backing file) and qemu-img
    // finds it clean and reads the same.
    auto w = kiln_open(img, true);
    ASSERT_TRUE(w);
    kiln_write(*w, 70000, std::vector<uint8_t>(5000, 0x33));
    close(w);
    expect_qemu_clean(img);
    // [65536, 73728) was zeroed; the subcluster after it shows the backing.
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'read -P 0 65536 4464' -c 'read -P 0x33 70000 5000' -c 'read -P 0x77 75000 "
                 "10000' " + img, &out), 0)
        << out;
    EXPECT_EQ(out.find("fail"), std::string::npos) << out;
}

// Runs only as the child of SigkillLeavesNoCorruption: writes until killed.
TEST_F(Qcow2Interop, WriterChildForSigkill)
{
    const char* img = getenv("KILN_QCOW2_KILL_CHILD");
    if (!img)
        GTEST_SKIP() << "helper for SigkillLeavesNoCorruption";
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    std::mt19937 rng(getpid());
    std::vector<uint8_t> buf(70000);
    for (uint64_t i = 0;; ++i) {
        uint64_t len = 512 + rng() % 60000;
        uint64_t off = rng() % (n->size_bytes() - len);
        for (auto& b : buf)
            b = uint8_t(i);
        if (i % 5 == 4)
            (void)run(n->pwrite_zeroes(off, len, RequestFlags::MayUnmap));
        else if (i % 7 == 6)
            (void)run(n->pdiscard(off, len));
        else
            (void)run(n->pwritev(off, QIov(buf.data(), len), RequestFlags::None));
        if (i % 11 == 0)
            (void)run(n->flush());
    }
}

TEST_F(Qcow2Interop, SigkillLeavesNoCorruption)
{
    std::string out;
    // Rounds 4, 5: extended L2 entries (subcluster allocation, zero bits).
    const char* options[] = {"cluster_size=512,refcount_bits=64", "cluster_size=4k", "cluster_size=512,refcount_bits=64",
                             "cluster_size=4k", "extended_l2=on", "extended_l2=on,cluster_size=16k"};
    for (int round = 0; round < 6; ++round) {
        std::string img = path("kill" + std::to_string(round) + ".qcow2");
        kiln_create(img, 16 << 20, options[round]);
        std::string cmd = "KILN_QCOW2_KILL_CHILD=" + img + " /proc/" + std::to_string(getpid())
                          + "/exe --gtest_filter='*WriterChildForSigkill' >/dev/null 2>&1 & pid=$!; "
                          // On a loaded machine the child may take longer than the
                          // kill delay just to start: wait (up to 20 s) until it writes.
                          + "n=0; while [ $(stat -c %s " + img + ") -le 65536 ] && [ $n -lt 400 ]; do sleep 0.05; "
                          + "n=$((n+1)); done; sleep 0." + std::to_string(3 + round * 2)
                          + "; kill -9 $pid; wait $pid 2>/dev/null; true";
        ASSERT_EQ(sh(cmd, &out), 0) << out;
        int status = 0;
        nlohmann::json j;
        // The dead writer's io_uring may release the file (and its lock) a
        // moment after the process is gone.
        for (int tries = 0; tries < 50; ++tries) {
            j = qemu_check(img, &status);
            if (!(j.contains("raw") && j["raw"].get<std::string>().find("lock") != std::string::npos))
                break;
            usleep(100000);
        }
        std::cout << "qemu-img check after SIGKILL (exit " << status << "): " << j.dump() << "\n";
        // 0 clean, 3 leaks only: both fine after a crash.
        EXPECT_TRUE(status == 0 || status == 3) << j.dump();
        EXPECT_FALSE(j.contains("corruptions")) << j.dump();
        EXPECT_GT(read_host(img).size(), 4u * 4096) << "the writer made progress";
        // Kiln sees the same leaks and repairs them; qemu-img agrees after.
        auto n = kiln_open(img, true);
        ASSERT_TRUE(n);
        auto kc = run(n->check(CheckFix::Leaks));
        ASSERT_TRUE(kc.ok());
        // Refcounts past the end of the file are ignored by both checks.
        EXPECT_EQ(kc->leaks_fixed, j.value("leaks", 0ull)) << j.dump();
        EXPECT_EQ(kc->corruptions, 0u);
        close(n);
        expect_qemu_clean(img);
    }
}

TEST_F(Qcow2Interop, ExternalDataFileImagesFromQemuReadIdentically)
{
    std::string img = path("d.qcow2");
    std::string out;
    ASSERT_EQ(sh("qemu-img create -f qcow2 -o data_file=" + path("d.raw") + " " + img + " 4M", &out), 0) << out;
    ASSERT_EQ(sh("qemu-io -f qcow2 -c 'write -P 0x31 0 100000' -c 'write -P 0x32 2000000 300000' -c 'write -z "
                 "2100000 50000' " +
                     img,
                 &out),
              0)
        << out;
    ASSERT_EQ(sh("qemu-img convert -f qcow2 -O raw " + img + " " + path("d-out.raw"), &out), 0) << out;
    auto n = kiln_open(img, false);
    ASSERT_TRUE(n);
    EXPECT_EQ(kiln_read(*n, 0, 4 << 20), read_host(path("d-out.raw")));
    auto kc = run(n->check(CheckFix::None));
    ASSERT_TRUE(kc.ok());
    EXPECT_EQ(kc->corruptions + kc->leaks, 0u);
    int status = 0;
    auto j = qemu_check(img, &status);
    EXPECT_EQ(j.value("image-end-offset", 0ull), kc->image_end_offset) << j.dump();
    ASSERT_EQ(sh("qemu-img info --output=json " + img, &out), 0);
    EXPECT_EQ(nlohmann::json::parse(out)["format-specific"], n->format_specific_info());
    auto st = run(n->block_status(0, 65536));
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->host_node, n->data_file());
}

TEST_F(Qcow2Interop, RefcountPastEndOfFileIsNotALeak)
{
    // A writer killed after its refcount reached the disk but before the
    // data write that would have extended the file leaves such a count.
    std::string img = path("eof.qcow2");
    std::string out;
    ASSERT_EQ(sh("qemu-img create -q -f qcow2 " + img + " 16M", &out), 0) << out;
    auto bytes = read_host(img);
    ASSERT_LT(bytes.size(), 10u * 65536);
    uint64_t reftable = 0, refblock = 0;
    for (int i = 0; i < 8; ++i)
        reftable = reftable << 8 | bytes[48 + i];
    for (int i = 0; i < 8; ++i)
        refblock = refblock << 8 | bytes[reftable + i];
    bytes[refblock + 2 * 10 + 1] = 1; // cluster 10, past the end of the file
    write_host(img, bytes);
    int status = 0;
    auto j = qemu_check(img, &status);
    EXPECT_EQ(status, 0) << j.dump();
    auto n = kiln_open(img, false);
    ASSERT_TRUE(n);
    auto kc = run(n->check(CheckFix::None));
    ASSERT_TRUE(kc.ok());
    EXPECT_EQ(kc->leaks, 0u);
    EXPECT_EQ(kc->image_end_offset, j.value("image-end-offset", 0ull)) << j.dump();
    close(n);
}
