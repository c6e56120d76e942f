// lazy_refcounts=on: the dirty bit is set by the first metadata change of
// a read-write session and cleared by a clean close; an image left dirty
// (process killed) is repaired on the next read-write open, by Kiln and
// by QEMU, and snapshot operations keep the session's bit.
#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/interop_fixture.h"

using namespace kiln;
using namespace kiln::block;
using namespace kiln::block::test;

namespace {

class Qcow2Lazy : public Qcow2Interop {
protected:
    bool dirty_on_disk(const std::string& p) { return read_host(p).at(79) & 1; }
};

TEST_F(Qcow2Lazy, DirtyWhileWritingCleanAfterClose)
{
    std::string img = path("l.qcow2");
    kiln_create(img, 4 << 20, "lazy_refcounts=on");
    EXPECT_FALSE(dirty_on_disk(img));
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    EXPECT_FALSE(dirty_on_disk(img)); // opening alone changes nothing
    kiln_write(*n, 0, random_bytes(100000, 1));
    EXPECT_TRUE(dirty_on_disk(img));
    EXPECT_TRUE(n->dirty());
    SnapshotInfo sn;
    sn.name = "s";
    ASSERT_TRUE(run(n->snapshot_create(sn)).ok());
    EXPECT_TRUE(dirty_on_disk(img)); // the snapshot does not end the session's bit
    close(n);
    EXPECT_FALSE(dirty_on_disk(img));
    expect_qemu_clean(img);
}

TEST_F(Qcow2Lazy, WithoutTheFeatureTheBitStaysClear)
{
    std::string img = path("n.qcow2");
    kiln_create(img, 4 << 20, "");
    auto n = kiln_open(img, true);
    ASSERT_TRUE(n);
    kiln_write(*n, 0, random_bytes(100000, 2));
    EXPECT_FALSE(dirty_on_disk(img));
    close(n);
}

TEST_F(Qcow2Lazy, LeftDirtyIsRepairedOnOpenByKilnAndQemu)
{
    for (bool kiln_repairs : {true, false}) {
        std::string img = path(kiln_repairs ? "k.qcow2" : "q.qcow2");
        kiln_create(img, 4 << 20, "lazy_refcounts=on");
        auto data = random_bytes(300000, 3);
        {
            auto n = kiln_open(img, true);
            ASSERT_TRUE(n);
            kiln_write(*n, 65536, data);
            ASSERT_TRUE(run(n->flush()).ok());
            // Dropped without close: as if the process died.
        }
        ASSERT_TRUE(dirty_on_disk(img));
        // Damage what lazy refcounts allow to be stale: zero the refcount
        // block (cluster 2) so only a rebuild can make the image right.
        auto bytes = read_host(img);
        std::fill(bytes.begin() + 2 * 65536, bytes.begin() + 3 * 65536, 0);
        write_host(img, bytes);
        std::string out;
        if (kiln_repairs) {
            auto n = kiln_open(img, true);
            ASSERT_TRUE(n);
            EXPECT_FALSE(n->dirty());
            close(n);
        } else {
            ASSERT_EQ(sh("qemu-io -c 'read 0 512' " + img, &out), 0) << out;
        }
        EXPECT_FALSE(dirty_on_disk(img));
        expect_qemu_clean(img);
        auto n = kiln_open(img, false);
        ASSERT_TRUE(n);
        EXPECT_EQ(kiln_read(*n, 65536, data.size()), data);
    }
}

} // namespace
