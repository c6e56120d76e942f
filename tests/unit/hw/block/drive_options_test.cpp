// -drive, -hdX, -cdrom, -snapshot and disk -device parsing, with the exact
// error text QEMU prints (after its "program: " prefix).
#include <gtest/gtest.h>

#include "system/drive_options.h"

namespace kiln::system {
namespace {

using hw::DiskDeviceKind;
using hw::DriveInterface;

Result<hw::DiskSetConfig> parse(std::vector<DiskArg> args) { return parse_disk_args(args); }

std::string error_of(std::vector<DiskArg> args)
{
    auto r = parse(std::move(args));
    return r.ok() ? "(no error)" : r.error().message();
}

TEST(DriveOptions, FullDriveLine)
{
    auto r = parse({ { "drive",
        "file=a.qcow2,format=qcow2,if=virtio,cache=none,aio=native,discard=unmap,"
        "detect-zeroes=unmap,serial=S1,werror=stop,rerror=ignore,id=d0,node-name=n0,"
        "file.locking=off,l2-cache-size=1M" } });
    ASSERT_TRUE(r.ok()) << r.error().message();
    const auto& d = r.value().drives.at(0);
    EXPECT_EQ(d.file, "a.qcow2");
    EXPECT_EQ(d.format, "qcow2");
    EXPECT_EQ(d.interface, DriveInterface::Virtio);
    EXPECT_EQ(d.cache, block::CacheMode::None);
    EXPECT_EQ(d.aio, block::AioEngine::Native);
    EXPECT_EQ(d.discard, hw::DiscardMode::Unmap);
    EXPECT_EQ(d.detect_zeroes, hw::DetectZeroes::Unmap);
    EXPECT_EQ(d.serial, "S1");
    EXPECT_EQ(d.werror, hw::BlockErrorAction::Stop);
    EXPECT_EQ(d.rerror, hw::BlockErrorAction::Ignore);
    EXPECT_EQ(d.id, "d0");
    EXPECT_EQ(d.node_name, "n0");
    EXPECT_EQ(d.block_options.get("file.locking"), "off");
    EXPECT_EQ(d.block_options.get("l2-cache-size"), "1M");
    EXPECT_FALSE(d.block_options.has("cache"));
    ASSERT_EQ(r.value().devices.size(), 1u);
    EXPECT_EQ(r.value().devices[0].kind, DiskDeviceKind::VirtioBlkPci);
    EXPECT_EQ(r.value().devices[0].drive_id, "d0");
}

TEST(DriveOptions, DefaultsMatchQemu)
{
    auto r = parse({ { "drive", "file=a.img" } });
    ASSERT_TRUE(r.ok());
    const auto& d = r.value().drives[0];
    EXPECT_EQ(d.interface, DriveInterface::Ide);
    EXPECT_EQ(d.id, "ide0-hd0");
    EXPECT_EQ(d.werror, hw::BlockErrorAction::StopOnEnospc);
    EXPECT_EQ(d.rerror, hw::BlockErrorAction::Report);
    EXPECT_EQ(d.cache, block::CacheMode::Writeback);
    EXPECT_FALSE(d.snapshot);
    ASSERT_EQ(r.value().devices.size(), 1u);
    EXPECT_EQ(r.value().devices[0].kind, DiskDeviceKind::IdeHd);
    EXPECT_EQ(r.value().devices[0].ide_bus, 0);
    EXPECT_EQ(r.value().devices[0].ide_unit, 0);
}

TEST(DriveOptions, HdaToHddCdromAndSnapshot)
{
    auto r = parse(
        { { "hdb", "b.img" }, { "cdrom", "c.iso" }, { "snapshot", "" }, { "hda", "a.img" }, { "hdd", "d.img" } });
    ASSERT_TRUE(r.ok()) << r.error().message();
    const auto& s = r.value();
    ASSERT_EQ(s.drives.size(), 4u);
    EXPECT_EQ(s.find_drive("ide0-hd1")->file, "b.img");
    EXPECT_EQ(s.find_drive("ide1-cd0")->file, "c.iso");
    EXPECT_TRUE(s.find_drive("ide1-cd0")->read_only);
    EXPECT_EQ(s.find_drive("ide0-hd0")->file, "a.img");
    EXPECT_EQ(s.find_drive("ide1-hd1")->file, "d.img");
    for (const auto& d : s.drives)
        EXPECT_TRUE(d.snapshot) << d.id; // -snapshot applies wherever it appears
    unsigned cds = 0;
    for (const auto& dev : s.devices)
        cds += dev.kind == DiskDeviceKind::IdeCd;
    EXPECT_EQ(cds, 1u);
}

TEST(DriveOptions, AutomaticIndexFillsFreeUnits)
{
    auto r = parse({ { "drive", "file=a,index=1" }, { "drive", "file=b" }, { "drive", "file=c" } });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value().drives[1].index, 0);
    EXPECT_EQ(r.value().drives[2].index, 2);
    EXPECT_EQ(r.value().drives[2].id, "ide1-hd0");
}

TEST(DriveOptions, DeviceForms)
{
    auto r = parse({ { "drive", "file=a,if=none,id=d0" }, { "drive", "file=b,if=none,id=d1" },
        { "drive", "if=none,id=cd,media=cdrom" },
        { "device", "virtio-blk-pci,drive=d0,serial=VS,num-queues=2,queue-size=128,addr=05" },
        { "device", "ide-hd,drive=d1,bus=ide.1,unit=1" }, { "device", "ide-cd,drive=cd" } });
    ASSERT_TRUE(r.ok()) << r.error().message();
    const auto& devs = r.value().devices;
    ASSERT_EQ(devs.size(), 3u);
    EXPECT_EQ(devs[0].kind, DiskDeviceKind::VirtioBlkPci);
    EXPECT_EQ(devs[0].serial, "VS");
    EXPECT_EQ(devs[0].num_queues, 2u);
    EXPECT_EQ(devs[0].queue_size, 128u);
    EXPECT_EQ(devs[0].pci_slot, 5);
    EXPECT_EQ(devs[1].ide_bus, 1);
    EXPECT_EQ(devs[1].ide_unit, 1);
    EXPECT_EQ(devs[2].ide_bus, 0); // first free unit
    EXPECT_EQ(devs[2].ide_unit, 0);
    EXPECT_TRUE(is_disk_device("virtio-blk-pci,drive=x"));
    EXPECT_TRUE(is_disk_device("driver=ide-cd"));
    EXPECT_FALSE(is_disk_device("e1000,netdev=n"));
    EXPECT_TRUE(is_disk_option("hdc"));
    EXPECT_FALSE(is_disk_option("device"));
}

TEST(DriveOptions, QemuErrorMessages)
{
    EXPECT_EQ(error_of({ { "drive", "file=a,if=foo" } }), "-drive file=a,if=foo: unsupported bus type 'foo'");
    EXPECT_EQ(error_of({ { "drive", "file=a,media=tape" } }), "-drive file=a,media=tape: 'tape' invalid media");
    EXPECT_EQ(error_of({ { "drive", "file=a,cache=fast" } }), "-drive file=a,cache=fast: invalid cache option");
    EXPECT_EQ(error_of({ { "drive", "file=a,aio=posix" } }), "-drive file=a,aio=posix: invalid aio option");
    EXPECT_EQ(error_of({ { "drive", "file=a,aio=native" } }),
        "-drive file=a,aio=native: aio=native was specified, but it requires cache.direct=on, which was not "
        "specified.");
    EXPECT_EQ(error_of({ { "drive", "file=a,werror=panic" } }),
        "-drive file=a,werror=panic: 'panic' invalid write error action");
    EXPECT_EQ(error_of({ { "drive", "file=a,rerror=enospc" } }),
        "-drive file=a,rerror=enospc: 'enospc' invalid read error action");
    EXPECT_EQ(error_of({ { "drive", "file=a,discard=maybe" } }), "-drive file=a,discard=maybe: Invalid discard option");
    EXPECT_EQ(error_of({ { "drive", "file=a,detect-zeroes=yes" } }),
        "-drive file=a,detect-zeroes=yes: Parameter 'detect-zeroes' does not accept value 'yes'");
    EXPECT_EQ(error_of({ { "drive", "file=a,detect-zeroes=unmap" } }),
        "-drive file=a,detect-zeroes=unmap: setting detect-zeroes to unmap is not allowed without setting "
        "discard operation to unmap");
    EXPECT_EQ(error_of({ { "drive", "file=a,readonly=maybe" } }),
        "-drive file=a,readonly=maybe: Parameter 'readonly' expects 'on' or 'off'");
    EXPECT_EQ(error_of({ { "drive", "file=a,index=0" }, { "drive", "file=b,index=0" } }),
        "-drive file=b,index=0: drive with bus=0, unit=0 (index=0) exists");
    EXPECT_EQ(error_of({ { "drive", "file=a,index=1,unit=1" } }),
        "-drive file=a,index=1,unit=1: index cannot be used with bus and unit");
    EXPECT_EQ(error_of({ { "drive", "file=a,unit=2" } }), "-drive file=a,unit=2: unit 2 too big (max is 1)");
    EXPECT_EQ(error_of({ { "drive", "file=a,index=4" } }),
        "-drive file=a,index=4: machine type does not support if=ide,bus=2,unit=0");
    EXPECT_EQ(error_of({ { "drive", "if=virtio" } }), "-drive if=virtio: Device needs media, but drive is empty");
    EXPECT_EQ(error_of({ { "drive", "file=a,id=x,if=none" }, { "drive", "file=b,id=x,if=none" } }),
        "-drive file=b,id=x,if=none: Duplicate ID 'x' for drive");
    EXPECT_EQ(error_of({ { "device", "virtio-blk-pci" } }), "-device virtio-blk-pci: drive property not set");
    EXPECT_EQ(error_of({ { "device", "ide-hd" } }), "-device ide-hd: No drive specified");
    EXPECT_EQ(error_of({ { "device", "virtio-blk-pci,drive=nope" } }),
        "-device virtio-blk-pci,drive=nope: Property 'virtio-blk-device.drive' can't find value 'nope'");
    EXPECT_EQ(error_of({ { "drive", "file=a,if=virtio,id=v" }, { "device", "virtio-blk-pci,drive=v" } }),
        "-device virtio-blk-pci,drive=v: Property 'virtio-blk-device.drive' can't take value 'v', it's in use");
    EXPECT_EQ(error_of({ { "drive", "file=a,if=none,id=d" }, { "device", "ide-hd,drive=d,bus=ide.4" } }),
        "-device ide-hd,drive=d,bus=ide.4: Bus 'ide.4' not found");
    EXPECT_EQ(error_of({ { "drive", "file=a,if=none,id=d" }, { "device", "ide-hd,drive=d,unit=3" } }),
        "-device ide-hd,drive=d,unit=3: Can't create IDE unit 3, bus supports only 2 units");
    EXPECT_EQ(error_of({ { "drive", "file=a,if=none,id=d" }, { "device", "virtio-blk-pci,drive=d,bogus=1" } }),
        "-device virtio-blk-pci,drive=d,bogus=1: Property 'virtio-blk-pci.bogus' not found");
    EXPECT_EQ(error_of({ { "drive", "file=a,if=none,id=d" }, { "device", "virtio-blk-pci,drive=d,queue-size=100" } }),
        "-device virtio-blk-pci,drive=d,queue-size=100: invalid queue-size property (100), must be a power of "
        "2 and between 2 and 1024");
    EXPECT_EQ(
        error_of({ { "drive", "file=a" }, { "drive", "file=b,if=none,id=d" }, { "device", "ide-hd,drive=d,unit=0" } }),
        "-device ide-hd,drive=d,unit=0: IDE unit 0 is in use");
}

} // namespace
} // namespace kiln::system
