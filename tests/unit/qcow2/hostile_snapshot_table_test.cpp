// Hostile snapshot tables (the header's nb_snapshots/snapshots_offset and
// the entries themselves), next to qemu-img 7.2: where QEMU refuses the
// image Kiln refuses it with the same message; where QEMU reads zeroes past
// the end of the file Kiln refuses with a clear message of its own; random
// damage to the table never crashes, hangs or writes.
#include <random>

#include "block/qcow2/format.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;
using kiln::block::qcow2::load_be64;
using kiln::block::qcow2::store_be16;
using kiln::block::qcow2::store_be32;
using kiln::block::qcow2::store_be64;

namespace {

class HostileSnapshotTable : public Qcow2Interop {
protected:
    void SetUp() override
    {
        Qcow2Interop::SetUp();
        if (IsSkipped())
            return;
        m_base = path("base.qcow2");
        kiln_create(m_base, 1 << 20, "");
        auto n = kiln_open(m_base, true);
        ASSERT_TRUE(n);
        kiln_write(*n, 0, random_bytes(65536, 5));
        for (const char* name : { "first", "second" }) {
            SnapshotInfo sn;
            sn.name = name;
            ASSERT_TRUE(run(n->snapshot_create(sn)).ok());
        }
        close(n);
        m_bytes = read_host(m_base);
        m_table = load_be64(&m_bytes[64]);
    }

    // The open error of Kiln ("" when it opens) after `mutate`.
    std::string kiln_error(const std::vector<uint8_t>& bytes, bool* qemu_opened = nullptr)
    {
        std::string p = path("h.qcow2");
        write_host(p, bytes);
        if (qemu_opened) {
            std::string out;
            *qemu_opened = sh("qemu-img info " + p + " 2>&1", &out) == 0;
            m_qemu_message = out;
        }
        ImageSpec spec { p, "qcow2", {}, {} };
        auto r = run(m_ctx->open_image(spec));
        if (r.ok()) {
            (void)(*r)->snapshots(); // listing must cope with what was parsed
            EXPECT_TRUE(run((*r)->close()).ok());
            return "";
        }
        return r.error().message();
    }

    std::vector<uint8_t> with(void (*mutate)(std::vector<uint8_t>&, uint64_t table)) const
    {
        auto b = m_bytes;
        mutate(b, m_table);
        return b;
    }

    std::string m_base;
    std::vector<uint8_t> m_bytes;
    uint64_t m_table = 0;
    std::string m_qemu_message;
};

} // namespace

TEST_F(HostileSnapshotTable, SameRefusalsAsQemu)
{
    struct Case {
        const char* what;
        void (*mutate)(std::vector<uint8_t>&, uint64_t);
        const char* message;
    };
    const Case cases[] = {
        { "too many snapshots", [](auto& b, uint64_t) { store_be32(&b[60], 70000); }, "Snapshot table too large" },
        { "unaligned table", [](auto& b, uint64_t t) { store_be64(&b[64], t + 8); }, "Snapshot table offset invalid" },
        { "extra data too large", [](auto& b, uint64_t t) { store_be32(&b[t + 36], 5000); },
            "Too much extra metadata in snapshot table entry 0" },
    };
    for (const auto& c : cases) {
        bool qemu_opened = true;
        std::string e = kiln_error(with(c.mutate), &qemu_opened);
        EXPECT_EQ(e, c.message) << c.what;
        EXPECT_FALSE(qemu_opened) << c.what;
        EXPECT_NE(m_qemu_message.find(c.message), std::string::npos) << c.what << ": " << m_qemu_message;
    }
}

TEST_F(HostileSnapshotTable, TablesPastTheFileAreRefusedWhereQemuReadsZeroes)
{
    EXPECT_EQ(kiln_error(with([](auto& b, uint64_t) { store_be64(&b[64], 1ull << 40); })),
        "Snapshot table lies past the end of the file");
    // More entries than the table holds: the walk runs off the end of the file.
    EXPECT_EQ(kiln_error(with([](auto& b, uint64_t) { store_be32(&b[60], 65536); })),
        "qcow2: snapshot table is truncated");
    // A name running past everything.
    EXPECT_EQ(kiln_error(with([](auto& b, uint64_t t) { store_be16(&b[t + 14], 65535); })),
        "qcow2: snapshot table is truncated");
}

TEST_F(HostileSnapshotTable, BadSnapshotL1PointersOpenButFailOnUse)
{
    // QEMU opens these too; using the snapshot must fail cleanly and write nothing.
    for (auto mutate : { +[](std::vector<uint8_t>& b, uint64_t t) { store_be64(&b[t], 1ull << 50); },
             +[](std::vector<uint8_t>& b, uint64_t t) { store_be64(&b[t], load_be64(&b[t]) + 8); },
             +[](std::vector<uint8_t>& b, uint64_t t) { store_be32(&b[t + 8], 0x10000000); } }) {
        auto bytes = with(mutate);
        EXPECT_EQ(kiln_error(bytes), "");
        std::string p = path("h.qcow2");
        ImageSpec spec { p, "qcow2", {}, {} };
        spec.flags.read_write = true;
        auto n = run(m_ctx->open_image(spec));
        ASSERT_TRUE(n.ok()) << n.error().message();
        auto applied = run((*n)->snapshot_goto("first"));
        EXPECT_FALSE(applied.ok());
        EXPECT_TRUE(run((*n)->close()).ok());
        auto after = read_host(p);
        // Only the header cluster may change (the dirty bit around the attempt).
        EXPECT_TRUE(std::equal(after.begin() + 4096, after.end(), bytes.begin() + 4096));
    }
}

TEST_F(HostileSnapshotTable, RandomDamageNeverCrashes)
{
    std::mt19937 rng(17);
    int refused = 0, opened = 0;
    for (int i = 0; i < 300; ++i) {
        auto b = m_bytes;
        int flips = 1 + int(rng() % 8);
        for (int f = 0; f < flips; ++f) {
            uint64_t at = m_table + rng() % 160;
            if (rng() % 4 == 0)
                at = 60 + rng() % 12; // nb_snapshots / snapshots_offset
            b[at] = uint8_t(rng());
        }
        std::string e = kiln_error(b);
        (e.empty() ? opened : refused)++;
        EXPECT_EQ(e.find('\n'), std::string::npos) << "one-line errors: " << e;
    }
    EXPECT_GT(refused, 0);
    EXPECT_GT(opened, 0);
}
