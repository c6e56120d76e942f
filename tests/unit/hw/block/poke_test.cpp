// A guest that writes garbage: random register writes to the IDE ports,
// the bus-master registers and every virtio-pci region, with random bytes
// in guest RAM where rings and PRD tables point. The process must survive
// (no crash, no hang, no access outside guest RAM under ASan) and the
// devices must still answer. Fixed seeds keep the runs reproducible.
#include <random>

#include "hw/ide/piix_ide.h"
#include "hw/virtio/virtio_blk.h"
#include "hw/virtio/virtio_pci.h"
#include "tests/unit/hw/block/disk_fixture.h"

namespace kiln::hw::test {
namespace {

class PokeTest : public DiskFixture, public MsiSink {
protected:
    void deliver_msi(uint64_t, uint32_t) override { msis++; }
    Drive* disk(const std::string& name)
    {
        DriveConfig c;
        c.id = name;
        c.file = make_raw(name, 1 << 20);
        c.format = "raw";
        c.werror = BlockErrorAction::Report;
        return open_drive(c);
    }
    void TearDown() override
    {
        run_idle(20);
        DiskFixture::TearDown();
    }
    unsigned msis = 0;
};

TEST_F(PokeTest, RandomIdeRegisterWrites)
{
    PiixIde ide(bus.irq[14], bus.irq[15], bus.pio, io);
    bus.map_pio(0x1f0, 8, ide.channel(0).command_block());
    bus.map_pio(0x3f6, 1, ide.channel(0).control_block());
    ide.config_write(0x20, 4, 0xc000);
    ide.config_write(0x04, 2, 5);
    ASSERT_TRUE(ide.channel(0).attach(0, IdeKind::Disk, disk("hd"), "").ok());
    DriveConfig cd;
    cd.id = "cd";
    cd.media = DriveMedia::Cdrom;
    cd.file = make_raw("cd.iso", 64 * 2048);
    cd.format = "raw";
    cd.read_only = true;
    ASSERT_TRUE(ide.channel(0).attach(1, IdeKind::Cdrom, open_drive(cd), "").ok());
    std::mt19937 rng(1234);
    for (uint64_t a = 0; a < (1 << 20); a += 4)
        ASSERT_TRUE(memory->write_value<uint32_t>(a, uint32_t(rng())).ok());
    for (int i = 0; i < 20000; i++) {
        unsigned r = rng() % 16;
        uint8_t v = uint8_t(rng());
        if (r < 7)
            bus.outb(uint16_t(0x1f1 + r), v);
        else if (r == 7)
            bus.outb(0x1f7, uint8_t(0x20 + rng() % 0xe0)); // commands
        else if (r < 10)
            (void)bus.inw(0x1f0);
        else if (r == 10)
            bus.outw(0x1f0, uint16_t(rng()));
        else if (r == 11)
            bus.outb(0x3f6, v & 0x06);
        else if (r == 12)
            bus.outl(0xc004, uint32_t(rng() % (2 << 20)));
        else if (r == 13)
            bus.outb(0xc000, v & 0x09);
        else if (r == 14)
            bus.outb(0xc002, v);
        else
            loop->run_once(0);
    }
    run_idle(50);
    // Still a working disk after a software reset.
    bus.outb(0xc000, 0);
    bus.outb(0x3f6, 0x04);
    bus.outb(0x3f6, 0x00);
    run_idle(50);
    bus.outb(0x1f6, 0xe0);
    bus.outb(0x1f2, 1);
    bus.outb(0x1f3, 0);
    bus.outb(0x1f4, 0);
    bus.outb(0x1f5, 0);
    bus.outb(0x1f7, ata::k_cmd_read_sectors);
    ASSERT_TRUE(run_until([&] { return !(bus.inb(0x3f6) & ata::k_bsy); }));
    EXPECT_EQ(bus.inb(0x1f7) & (ata::k_drq | ata::k_err), ata::k_drq);
}

TEST_F(PokeTest, RandomVirtioRegisterWritesAndRings)
{
    VirtioBlkConfig bc;
    bc.queue_size = 64;
    bc.num_queues = 2;
    VirtioBlk blk(*disk("v"), bc, io);
    VirtioPci pci(blk, *memory, bus.irq[11], this, VirtioPciBuses { &bus.pio, &bus.mmio }, "virtio-blk-pci");
    pci.config_write(0x10, 4, 0xc100);
    pci.config_write(0x14, 4, 0xfe000000u);
    pci.config_write(0x20, 4, 0xfe100000u);
    pci.config_write(0x24, 4, 0);
    pci.config_write(0x04, 2, 7);
    std::mt19937 rng(99);
    auto fill_ram = [&] {
        for (uint64_t a = 0; a < (1 << 20); a += 4)
            ASSERT_TRUE(memory->write_value<uint32_t>(a, uint32_t(rng())).ok());
    };
    fill_ram();
    for (int round = 0; round < 200; round++) {
        // Mostly sane set-up, with random twists, then random kicks.
        uint64_t f = (uint64_t(rng()) << 32 | rng()) & (blk.host_features() | (rng() % 4 == 0 ? ~0ull : 0));
        bus.mmio.write(0xfe100014, 1, 0);
        bus.mmio.write(0xfe100014, 1, 3);
        bus.mmio.write(0xfe100008, 4, 0);
        bus.mmio.write(0xfe10000c, 4, uint32_t(f));
        bus.mmio.write(0xfe100008, 4, 1);
        bus.mmio.write(0xfe10000c, 4, uint32_t(f >> 32));
        bus.mmio.write(0xfe100014, 1, 11);
        for (unsigned q = 0; q < 2; q++) {
            bus.mmio.write(0xfe100016, 2, q);
            bus.mmio.write(0xfe100018, 2, rng() % 4 ? 64 : rng());
            bus.mmio.write(0xfe100020, 8, rng() % (1 << 20));
            bus.mmio.write(0xfe100028, 8, rng() % 8 ? rng() % (1 << 20) : uint64_t(rng()) << 20);
            bus.mmio.write(0xfe100030, 8, rng() % (1 << 20));
            bus.mmio.write(0xfe10001a, 2, rng() % 5);
            bus.mmio.write(0xfe10001c, 2, 1);
        }
        bus.mmio.write(0xfe100014, 1, 15);
        if (round % 3 == 0)
            pci.config_write(0x87, 1, rng() % 2 ? 0x80 : 0);
        for (int k = 0; k < 20; k++) {
            unsigned what = rng() % 8;
            if (what < 4)
                bus.mmio.write(0xfe103000 + 4 * (rng() % 3), 2, rng() % 3);
            else if (what == 4)
                bus.mmio.write(0xfe100000 + rng() % 0x38, 1u << (rng() % 3), rng());
            else if (what == 5)
                bus.pio.write(uint16_t(0xc100 + rng() % 0x80), 1u << (rng() % 3), rng());
            else if (what == 6)
                bus.mmio.write(0xfe000000 + 4 * (rng() % 0x300), 4, rng());
            else
                loop->run_once(0);
            (void)memory->write_value<uint16_t>(rng() % (1 << 20), uint16_t(rng()));
        }
        run_idle(2);
        if (round % 50 == 0)
            fill_ram();
    }
    run_idle(50);
    SUCCEED() << msis << " MSIs";
}

} // namespace
} // namespace kiln::hw::test
