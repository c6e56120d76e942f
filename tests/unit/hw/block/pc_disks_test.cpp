// PcDisks on a whole `pc` board: PCI identity of the IDE and virtio-blk
// functions seen through 0xCF8/0xCFC, an IDE read raising ISA IRQ 14
// through the PIC, and a virtio-blk request whose MSI-X interrupt lands in
// the local APIC.
#include "hw/i386/pc_disks.h"
#include "hw/ide/ata_defs.h"
#include "tests/unit/hw/block/disk_fixture.h"

namespace kiln::hw::test {
namespace {

class PcDisksTest : public DiskFixture {
protected:
    void build(const DiskSetConfig& cfg)
    {
        auto r = loop->run_until_complete(PcDisks::create(*mh.machine, *ctx, cfg, this));
        ASSERT_TRUE(r.ok()) << r.error().message();
        disks = std::move(r).value();
    }
    void TearDown() override
    {
        if (disks)
            (void)loop->run_until_complete(disks->close());
        disks.reset();
        DiskFixture::TearDown();
    }
    uint32_t cfg_read(unsigned slot, unsigned fn, unsigned off)
    {
        mh.outl(0xcf8, 0x80000000u | slot << 11 | fn << 8 | off);
        return mh.inl(0xcfc);
    }
    void cfg_write(unsigned slot, unsigned fn, unsigned off, uint32_t v)
    {
        mh.outl(0xcf8, 0x80000000u | slot << 11 | fn << 8 | off);
        mh.outl(0xcfc, v);
    }
    DiskSetConfig two_disks()
    {
        DiskSetConfig cfg;
        DriveConfig ide;
        ide.id = "ide0-hd0";
        ide.file = make_raw("ide.raw", 1 << 20);
        ide.format = "raw";
        DriveConfig vb;
        vb.id = "virtio0";
        vb.file = make_raw("vb.raw", 1 << 20);
        vb.format = "raw";
        vb.interface = DriveInterface::Virtio;
        cfg.drives = { ide, vb };
        DiskDeviceConfig d0;
        d0.kind = DiskDeviceKind::IdeHd;
        d0.drive_id = "ide0-hd0";
        d0.ide_bus = 0;
        d0.ide_unit = 0;
        DiskDeviceConfig d1;
        d1.kind = DiskDeviceKind::VirtioBlkPci;
        d1.drive_id = "virtio0";
        cfg.devices = { d0, d1 };
        return cfg;
    }

    MachineHarness mh;
    std::unique_ptr<PcDisks> disks;
};

TEST_F(PcDisksTest, PciFunctionsAreWhereQemuPutsThem)
{
    build(two_disks());
    EXPECT_EQ(cfg_read(1, 1, 0), 0x70108086u);
    EXPECT_EQ(cfg_read(1, 1, 8) >> 8, 0x010180u);
    // As QEMU's piix3-ide shows in lspci -x: status 0x0280, subsystem
    // 1af4:1100, no interrupt pin (legacy IRQ 14/15).
    EXPECT_EQ(cfg_read(1, 1, 4) >> 16, 0x0280u);
    EXPECT_EQ(cfg_read(1, 1, 0x2c), 0x11001af4u);
    EXPECT_EQ((cfg_read(1, 1, 0x3c) >> 8) & 0xff, 0u);
    EXPECT_EQ(cfg_read(3, 0, 0), 0x10011af4u);
    EXPECT_EQ(cfg_read(3, 0, 0x2c) >> 16, 2u);
    EXPECT_EQ(disks->virtio_count(), 1u);
    EXPECT_EQ(disks->device_states().size(), 2u);
}

TEST_F(PcDisksTest, IdeReadRaisesIrq14ThroughThePic)
{
    build(two_disks());
    // Unmask IRQ 14 on the slave PIC (cascade on 2 on the master).
    mh.outb(0x20, 0x11);
    mh.outb(0x21, 0x20);
    mh.outb(0x21, 0x04);
    mh.outb(0x21, 0x01);
    mh.outb(0xa0, 0x11);
    mh.outb(0xa1, 0x28);
    mh.outb(0xa1, 0x02);
    mh.outb(0xa1, 0x01);
    mh.outb(0x21, 0xfb);
    mh.outb(0xa1, 0xbf);
    mh.outb(0x1f2, 1);
    mh.outb(0x1f3, 2);
    mh.outb(0x1f4, 0);
    mh.outb(0x1f5, 0);
    mh.outb(0x1f6, 0xe0);
    mh.outb(0x1f7, ata::k_cmd_read_sectors);
    ASSERT_TRUE(run_until([&] { return !(mh.inb(0x3f6) & ata::k_bsy); }));
    EXPECT_TRUE(mh.machine->isa_irq(14).level());
    EXPECT_TRUE(mh.machine->pic().output());
    uint16_t w = uint16_t(mh.machine->pio_read(0x1f0, 2));
    EXPECT_EQ(w & 0xff, pattern(1024));
}

TEST_F(PcDisksTest, VirtioMsixReachesTheLocalApic)
{
    build(two_disks());
    // BARs: MSI-X table at 0xfe000000, modern BAR4 at 0xfe100000.
    cfg_write(3, 0, 0x14, 0xfe000000u);
    cfg_write(3, 0, 0x20, 0xfe100000u);
    cfg_write(3, 0, 0x24, 0);
    cfg_write(3, 0, 0x04, 0x0006);
    unsigned cap = cfg_read(3, 0, 0x34) & 0xff;
    cfg_write(3, 0, cap, cfg_read(3, 0, cap) | 0x80000000u); // MSI-X enable
    // Software-enable the APIC, vector 0x51 for queue 0 (MSI-X entry 1).
    mh.writel(0xfee000f0, 0x1ff);
    mh.writel(0xfe000010, 0xfee00000);
    mh.writel(0xfe000014, 0);
    mh.writel(0xfe000018, 0x51);
    mh.writel(0xfe00001c, 0);
    VirtioPci& pci = disks->virtio_pci(0);
    GuestMemory& mem = mh.machine->memory();
    auto w8 = [&](uint64_t off, uint8_t v) { mh.machine->mmio_write(0xfe100000 + off, 1, v); };
    auto w16 = [&](uint64_t off, uint16_t v) { mh.machine->mmio_write(0xfe100000 + off, 2, v); };
    auto w32 = [&](uint64_t off, uint32_t v) { mh.machine->mmio_write(0xfe100000 + off, 4, v); };
    w8(0x14, 3);
    w32(0x08, 1);
    w32(0x0c, 1); // VERSION_1
    w8(0x14, 11);
    w16(0x16, 0);
    w16(0x18, 8);
    w16(0x1a, 1);
    w32(0x20, 0x10000);
    w32(0x28, 0x11000);
    w32(0x30, 0x12000);
    w16(0x1c, 1);
    w8(0x14, 15);
    ASSERT_EQ(pci.status() & 0x4f, 15);
    // One read of sector 0.
    ASSERT_TRUE(mem.write_value<uint32_t>(0x20000, 0).ok());
    ASSERT_TRUE(mem.write_value<uint64_t>(0x20008, 0).ok());
    auto desc = [&](unsigned i, uint64_t a, uint32_t l, uint16_t f, uint16_t n) {
        ASSERT_TRUE(mem.write_value<uint64_t>(0x10000 + 16 * i, a).ok());
        ASSERT_TRUE(mem.write_value<uint32_t>(0x10000 + 16 * i + 8, l).ok());
        ASSERT_TRUE(mem.write_value<uint16_t>(0x10000 + 16 * i + 12, f).ok());
        ASSERT_TRUE(mem.write_value<uint16_t>(0x10000 + 16 * i + 14, n).ok());
    };
    desc(0, 0x20000, 16, 1, 1);
    desc(1, 0x21000, 512, 3, 2);
    desc(2, 0x20010, 1, 2, 0);
    ASSERT_TRUE(mem.write_value<uint16_t>(0x11004, 0).ok());
    ASSERT_TRUE(mem.write_value<uint16_t>(0x11002, 1).ok());
    w16(0x3000, 0);
    ASSERT_TRUE(run_until([&] { return mem.read_value<uint16_t>(0x12002).value() == 1; }));
    EXPECT_EQ(mem.read_value<uint8_t>(0x20010).value(), 0);
    EXPECT_EQ(mem.read_value<uint8_t>(0x21001).value(), pattern(1));
    EXPECT_TRUE(mh.machine->lapic().interrupt_pending());
    EXPECT_EQ(mh.machine->acknowledge_interrupt(), 0x51);
}

TEST_F(PcDisksTest, WithoutAnErrorHostWerrorStopPausesTheMachine)
{
    // The board's own reaction (no host passed to create): a stopped
    // request asks the machine to stop, as werror=stop promises.
    DiskSetConfig cfg = two_disks();
    cfg.drives[0].werror = BlockErrorAction::Stop;
    auto r = loop->run_until_complete(PcDisks::create(*mh.machine, *ctx, cfg));
    ASSERT_TRUE(r.ok()) << r.error().message();
    disks = std::move(r).value();
    (void)mh.machine->take_events();
    Error enospc(ErrorKind::NoSpace, "No space left on device", ENOSPC);
    EXPECT_EQ(disks->drive("ide0-hd0")->handle_error(IoDirection::Write, enospc, [] {}), ErrorOutcome::Stopped);
    EXPECT_TRUE(mh.machine->take_events() & unsigned(MachineEvent::Stop));
    EXPECT_EQ(disks->drive("ide0-hd0")->stopped_requests(), 1u);
}

TEST_F(PcDisksTest, MissingImageNamesTheOption)
{
    DiskSetConfig cfg;
    DriveConfig d;
    d.id = "x";
    d.file = path("missing.img");
    d.origin = "-drive file=" + d.file;
    cfg.drives = { d };
    auto r = loop->run_until_complete(PcDisks::create(*mh.machine, *ctx, cfg, this));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(
        r.error().message(), "-drive file=" + d.file + ": Could not open '" + d.file + "': No such file or directory");
}

} // namespace
} // namespace kiln::hw::test
