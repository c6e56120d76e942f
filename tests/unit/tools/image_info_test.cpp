// Human renderings shared by info and snapshot -l.
#include <gtest/gtest.h>

#include "tools/common/image_info.h"

using namespace kiln;
using namespace kiln::tools;

TEST(ImageInfo, SnapshotTableColumns)
{
    block::SnapshotInfo sn;
    sn.id = "1";
    sn.name = "first";
    sn.vm_clock_nsec = 3723004000000ull; // 1:02:03.004
    sn.icount = 0;
    setenv("TZ", "UTC", 1);
    tzset();
    sn.date_sec = 1795239014; // 2026-11-21 05:30:14 UTC
    std::string out = dump_snapshot_table({sn});
    EXPECT_EQ(out, "Snapshot list:\n"
                   "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n"
                   "1         first                 0 B 2026-11-21 05:30:14 01:02:03.004          0\n");
}

TEST(ImageInfo, LongSnapshotNamePushesColumns)
{
    block::SnapshotInfo sn;
    sn.id = "3";
    sn.name = "averyveryverylongsnapshotname_abcdef";
    sn.icount = UINT64_MAX;
    std::string out = dump_snapshot_table({sn});
    EXPECT_NE(out.find("3         averyveryverylongsnapshotname_abcdef      0 B"), std::string::npos);
}

TEST(ImageInfo, FormatSpecificDump)
{
    Json data = Json::object();
    data["compat"] = "1.1";
    data["compression-type"] = "zlib";
    data["lazy-refcounts"] = false;
    data["refcount-bits"] = 16;
    data["corrupt"] = false;
    data["extended-l2"] = false;
    EXPECT_EQ(dump_qobject_human(data, 1), "    compat: 1.1\n    compression type: zlib\n    lazy refcounts: false\n"
                                           "    refcount bits: 16\n    corrupt: false\n    extended l2: false\n");
}

TEST(ImageInfo, BackingPathIsRelativeToImage)
{
    EXPECT_EQ(full_backing_filename("sub/c.qcow2", "../a.qcow2"), "sub/../a.qcow2");
    EXPECT_EQ(full_backing_filename("c.qcow2", "a.qcow2"), "a.qcow2");
    EXPECT_EQ(full_backing_filename("sub/c.qcow2", "/abs/a.qcow2"), "/abs/a.qcow2");
}

TEST(ImageInfo, HumanInfoForBackedImage)
{
    Json info = Json::object();
    info["filename"] = "sub/c.qcow2";
    info["format"] = "qcow2";
    info["dirty-flag"] = false;
    info["actual-size"] = 200704;
    info["virtual-size"] = 67108864;
    info["cluster-size"] = 65536;
    info["backing-filename"] = "../a.qcow2";
    info["full-backing-filename"] = "sub/../a.qcow2";
    info["backing-filename-format"] = "qcow2";
    EXPECT_EQ(dump_image_info_human(info), "image: sub/c.qcow2\nfile format: qcow2\n"
                                           "virtual size: 64 MiB (67108864 bytes)\ndisk size: 196 KiB\n"
                                           "cluster_size: 65536\n"
                                           "backing file: ../a.qcow2 (actual path: sub/../a.qcow2)\n"
                                           "backing file format: qcow2\n");
}
