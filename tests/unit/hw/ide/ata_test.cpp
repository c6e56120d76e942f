// ATA disk through the PIIX3 IDE function: IDENTIFY, PIO (LBA28, LBA48,
// CHS, multiple), bus-master DMA (good and hostile PRD tables), FLUSH,
// resets, nIEN and the werror=stop policy.
#include <cstring>
#include <fstream>

#include "tests/unit/hw/ide/ide_fixture.h"
#include "tests/unit/qcow2/mem_node.h"

namespace kiln::hw::test {
namespace {

using namespace ata;

class AtaTest : public IdeFixture {
protected:
    void SetUp() override
    {
        IdeFixture::SetUp();
        make_controller();
    }
    std::string ata_string(const std::vector<uint8_t>& id, unsigned word, unsigned chars)
    {
        std::string s;
        for (unsigned i = 0; i < chars; i += 2) {
            s += char(id[2 * (word + i / 2) + 1]);
            s += char(id[2 * (word + i / 2)]);
        }
        while (!s.empty() && s.back() == ' ')
            s.pop_back();
        return s;
    }
    uint16_t word(const std::vector<uint8_t>& id, unsigned w) { return uint16_t(id[2 * w] | id[2 * w + 1] << 8); }
    std::vector<uint8_t> file_bytes(const std::string& p, uint64_t off, size_t n)
    {
        std::ifstream in(p, std::ios::binary);
        in.seekg(std::streamoff(off));
        std::vector<uint8_t> v(n);
        in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n));
        return v;
    }
};

TEST_F(AtaTest, IdentifyReportsModelSerialCapacityAndFeatures)
{
    Drive* d = disk(8 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "SER123").ok());
    select(0, 0);
    command(0, k_cmd_identify);
    EXPECT_TRUE(bus.irq[14].level());
    EXPECT_TRUE(status() & k_drq);
    auto id = read_data(0, 512);
    EXPECT_FALSE(status() & k_drq);
    EXPECT_EQ(word(id, 0), 0x0040);
    EXPECT_EQ(ata_string(id, 27, 40), "QEMU HARDDISK");
    EXPECT_EQ(ata_string(id, 10, 20), "SER123");
    uint32_t sectors = (8u << 20) / 512;
    EXPECT_EQ(word(id, 60) | uint32_t(word(id, 61)) << 16, sectors);
    EXPECT_EQ(word(id, 100) | uint32_t(word(id, 101)) << 16, sectors);
    EXPECT_TRUE(word(id, 83) & (1 << 10)); // LBA48
    EXPECT_TRUE(word(id, 49) & (1 << 9)); // LBA
    EXPECT_TRUE(word(id, 49) & (1 << 8)); // DMA
    EXPECT_EQ(word(id, 47) & 0xff, k_max_mult_sectors);
    EXPECT_EQ(word(id, 88) & 0x3f, 0x3f); // UDMA 0-5
    EXPECT_EQ(word(id, 59), 0x100 | k_max_mult_sectors);
}

TEST_F(AtaTest, AbsentSlaveReadsZeroAndDefaultSerial)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    EXPECT_EQ(ide->channel(0).unit(0).serial, "QM00001");
    select(0, 1);
    EXPECT_EQ(status(), 0);
    select(0, 0);
    EXPECT_EQ(status(), k_drdy | k_dsc);
}

TEST_F(AtaTest, PioReadLba28SectorBySector)
{
    Drive* d = disk(4 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    lba28(0, 5, 3);
    command(0, k_cmd_read_sectors);
    for (int s = 0; s < 3; s++) {
        ASSERT_TRUE(wait_ready());
        EXPECT_TRUE(bus.irq[14].level()) << s;
        uint8_t st = status(); // acknowledges
        EXPECT_EQ(st & (k_drq | k_err), k_drq) << s;
        EXPECT_FALSE(bus.irq[14].level());
        auto data = read_data(0, 512);
        for (int i = 0; i < 512; i++)
            ASSERT_EQ(data[i], pattern((5 + s) * 512 + i)) << "sector " << s << " byte " << i;
    }
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(status() & (k_drq | k_bsy | k_err), 0);
}

TEST_F(AtaTest, PioWriteLba48BeyondLba28Range)
{
    // A sparse 160 GiB disk: the LBA48 sector below is past 2^28.
    Drive* d = disk(160ull << 30, "big.raw", false);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    uint64_t lba = 0x10000005ull;
    std::vector<uint8_t> buf(1024);
    for (size_t i = 0; i < buf.size(); i++)
        buf[i] = uint8_t(i * 3 + 1);
    lba48(0, lba, 2);
    command(0, k_cmd_write_sectors_ext);
    EXPECT_TRUE(status() & k_drq); // first block without an interrupt
    write_data(0, buf.data(), 512);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_drq);
    write_data(0, buf.data() + 512, 512);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(bus.irq[14].level());
    EXPECT_EQ(status() & (k_drq | k_err), 0);
    EXPECT_EQ(file_bytes(path("big.raw"), lba * 512, 1024), buf);

    // Read it back with READ SECTORS EXT, and check the HOB registers.
    lba48(0, lba, 2);
    command(0, k_cmd_read_sectors_ext);
    ASSERT_TRUE(wait_ready());
    auto back = read_data(0, 512);
    ASSERT_TRUE(wait_ready());
    auto back2 = read_data(0, 512);
    back.insert(back.end(), back2.begin(), back2.end());
    EXPECT_EQ(back, buf);
    bus.outb(0x3f6, k_hob);
    EXPECT_EQ(bus.inb(0x1f3), uint8_t((lba + 1) >> 24));
    bus.outb(0x3f6, 0);
    EXPECT_EQ(bus.inb(0x1f3), uint8_t(lba + 1));
}

TEST_F(AtaTest, OutOfRangeSectorIsIdnf)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    lba28(0, 2047, 2); // last sector + one past
    command(0, k_cmd_read_sectors);
    EXPECT_TRUE(status() & k_err);
    EXPECT_TRUE(bus.inb(0x1f1) & k_idnf);
}

TEST_F(AtaTest, ChsAddressing)
{
    Drive* d = disk(4 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    // Cylinder 1, head 2, sector 3 with 16 heads and 63 sectors per track.
    uint64_t lba = (1 * 16 + 2) * 63 + 2;
    bus.outb(0x1f2, 1);
    bus.outb(0x1f3, 3);
    bus.outb(0x1f4, 1);
    bus.outb(0x1f5, 0);
    bus.outb(0x1f6, 0xa0 | 2);
    command(0, k_cmd_read_sectors);
    ASSERT_TRUE(wait_ready());
    auto data = read_data(0, 512);
    EXPECT_EQ(data[0], pattern(lba * 512));
    EXPECT_EQ(data[511], pattern(lba * 512 + 511));
}

TEST_F(AtaTest, ReadWriteMultiple)
{
    Drive* d = disk(4 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    bus.outb(0x1f2, 3); // not a power of two
    command(0, k_cmd_set_multiple);
    EXPECT_TRUE(status() & k_err);
    bus.outb(0x1f2, 4);
    command(0, k_cmd_set_multiple);
    EXPECT_FALSE(status() & k_err);

    std::vector<uint8_t> buf(6 * 512);
    for (size_t i = 0; i < buf.size(); i++)
        buf[i] = uint8_t(i ^ 0x5a);
    lba28(0, 100, 6);
    command(0, k_cmd_write_multiple);
    write_data(0, buf.data(), 4 * 512); // one DRQ block of 4 sectors
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_drq);
    write_data(0, buf.data() + 4 * 512, 2 * 512);
    ASSERT_TRUE(wait_ready());
    EXPECT_FALSE(status() & (k_drq | k_err));
    EXPECT_EQ(file_bytes(path("disk.raw"), 100 * 512, buf.size()), buf);

    lba28(0, 100, 6);
    command(0, k_cmd_read_multiple);
    ASSERT_TRUE(wait_ready());
    (void)status();
    unsigned irqs = bus.irq[14].rising_edges();
    auto a = read_data(0, 4 * 512);
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(bus.irq[14].rising_edges(), irqs + 1);
    auto b = read_data(0, 2 * 512);
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(a, buf);
}

TEST_F(AtaTest, DmaReadAndWriteThroughPrdTable)
{
    Drive* d = disk(4 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    // Read 8 sectors into two buffers of 1 KiB and 3 KiB.
    prd(0x1000, { { 0x10000, 1024 }, { 0x20000, 3072 } });
    lba28(0, 16, 8);
    command(0, k_cmd_read_dma);
    bm_start(true);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(bus.irq[14].level());
    EXPECT_EQ(bm_status() & 0x07, 0x04); // interrupt, not active, no error
    EXPECT_EQ(status() & (k_err | k_drq), 0);
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE(memory->read(0x10000, got.data(), 1024).ok());
    ASSERT_TRUE(memory->read(0x20000, got.data() + 1024, 3072).ok());
    for (size_t i = 0; i < got.size(); i++)
        ASSERT_EQ(got[i], pattern(16 * 512 + i)) << i;
    bus.outb(k_bm + 2, 0x04); // clear the interrupt bit
    EXPECT_EQ(bm_status() & 0x04, 0);

    // Write them to sector 200 with the command started after the engine.
    bus.outb(k_bm, 0);
    prd(0x1000, { { 0x20000, 3072 }, { 0x10000, 1024 } });
    bm_start(false);
    lba28(0, 200, 8);
    command(0, k_cmd_write_dma);
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(status() & k_err, 0);
    auto on_disk = file_bytes(path("disk.raw"), 200 * 512, 4096);
    std::vector<uint8_t> expect(got.begin() + 1024, got.end());
    expect.insert(expect.end(), got.begin(), got.begin() + 1024);
    EXPECT_EQ(on_disk, expect);
}

TEST_F(AtaTest, DmaExtWith64KiBEntry)
{
    Drive* d = disk(4 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    prd(0x1000, { { 0x100000, 0 } }); // 0 means 64 KiB
    lba48(0, 0, 128);
    command(0, k_cmd_read_dma_ext);
    bm_start(true);
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(status() & k_err, 0);
    uint8_t last = 0;
    ASSERT_TRUE(memory->read(0x100000 + 65535, &last, 1).ok());
    EXPECT_EQ(last, pattern(65535));
}

TEST_F(AtaTest, HostilePrdTablesEndInErrorNotHang)
{
    Drive* d = disk(64 << 20, "big.raw", false);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    // 1. A table without an end marker whose entries are too short: the
    // walk stops at 8192 entries.
    for (unsigned i = 0; i < 8192; i++) {
        ASSERT_TRUE(memory->write_value<uint32_t>(0x200000 + 8 * i, 0x300000).ok());
        ASSERT_TRUE(memory->write_value<uint32_t>(0x200000 + 8 * i + 4, 2).ok());
    }
    bus.outl(k_bm + 4, 0x200000);
    lba48(0, 0, 0); // 65536 sectors: 32 MiB, more than the table can hold
    command(0, k_cmd_read_dma_ext);
    bm_start(true);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(bus.irq[14].level());
    EXPECT_TRUE(status() & k_err);
    EXPECT_TRUE(bm_status() & 0x02);

    // 2. An entry pointing outside guest RAM.
    bus.outb(k_bm, 0);
    bus.outb(k_bm + 2, 0x06);
    prd(0x1000, { { 0xfff00000u, 4096 } });
    lba28(0, 0, 8);
    command(0, k_cmd_read_dma);
    bm_start(true);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_err);
    EXPECT_TRUE(bm_status() & 0x02);

    // 3. The table itself outside RAM.
    bus.outb(k_bm, 0);
    bus.outb(k_bm + 2, 0x06);
    bus.outl(k_bm + 4, 0xfffffff0u);
    lba28(0, 0, 1);
    command(0, k_cmd_read_dma);
    bm_start(true);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_err);

    // The device still works afterwards.
    bus.outb(k_bm, 0);
    lba28(0, 1, 1);
    command(0, k_cmd_read_sectors);
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(status() & (k_err | k_drq), k_drq);
    EXPECT_EQ(read_data(0, 512)[0], 0);
}

TEST_F(AtaTest, FlushCacheCompletesWithInterrupt)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    uint64_t before = d->backend()->stats().flush_operations;
    command(0, k_cmd_flush_cache_ext);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(bus.irq[14].level());
    EXPECT_EQ(status() & k_err, 0);
    EXPECT_EQ(d->backend()->stats().flush_operations, before + 1);
}

TEST_F(AtaTest, HousekeepingCommands)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    bus.outb(0x1f2, 0);
    command(0, k_cmd_check_power_mode);
    EXPECT_EQ(bus.inb(0x1f2), 0xff);
    for (uint8_t c : { k_cmd_idle_immediate, k_cmd_standby_immediate, k_cmd_idle, k_cmd_init_params }) {
        command(0, c);
        EXPECT_EQ(status() & k_err, 0) << int(c);
    }
    // SET FEATURES: UDMA mode 5 shows in IDENTIFY word 88; bad subcommand aborts.
    bus.outb(0x1f1, 0x03);
    bus.outb(0x1f2, 0x45);
    command(0, k_cmd_set_features);
    EXPECT_EQ(status() & k_err, 0);
    command(0, k_cmd_identify);
    auto id = read_data(0, 512);
    EXPECT_EQ(id[177], 1 << 5);
    bus.outb(0x1f1, 0x77);
    command(0, k_cmd_set_features);
    EXPECT_TRUE(status() & k_err);
    EXPECT_EQ(bus.inb(0x1f1), k_abrt);
    // Unknown commands abort; DEVICE RESET is for ATAPI only.
    command(0, 0x5c);
    EXPECT_TRUE(status() & k_err);
    command(0, k_cmd_device_reset);
    EXPECT_TRUE(status() & k_err);
    // EXECUTE DEVICE DIAGNOSTIC: error register 1 means passed.
    command(0, k_cmd_exec_diagnostic);
    EXPECT_EQ(bus.inb(0x1f1), 0x01);
}

TEST_F(AtaTest, SoftwareResetAndNien)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    // nIEN masks the line; the interrupt shows once it is cleared.
    bus.outb(0x3f6, k_nien);
    command(0, k_cmd_flush_cache);
    ASSERT_TRUE(wait_ready());
    EXPECT_FALSE(bus.irq[14].level());
    bus.outb(0x3f6, 0);
    EXPECT_TRUE(bus.irq[14].level());
    (void)status();

    lba28(0, 3, 1);
    command(0, k_cmd_read_sectors);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_drq);
    bus.outb(0x3f6, k_srst);
    EXPECT_TRUE(alt_status() & k_bsy);
    bus.outb(0x3f6, 0);
    EXPECT_EQ(alt_status(), k_drdy | k_dsc);
    EXPECT_EQ(bus.inb(0x1f1), 0x01);
    EXPECT_EQ(bus.inb(0x1f2), 1);
    EXPECT_EQ(bus.inb(0x1f3), 1);
    EXPECT_EQ(bus.inb(0x1f4), 0);
    EXPECT_EQ(bus.inb(0x1f5), 0);
}

TEST_F(AtaTest, RequestsRunOnTheLoopNotInline)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    lba28(0, 0, 1);
    command(0, k_cmd_read_sectors);
    // The register write returned before any I/O happened.
    EXPECT_TRUE(alt_status() & k_bsy);
    EXPECT_EQ(d->backend()->stats().rd_operations, 0u);
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(d->backend()->stats().rd_operations, 1u);
}

TEST_F(AtaTest, WerrorStopPausesAndRetriesOnResume)
{
    auto node = std::make_unique<block::test::MemNode>(*ctx, std::vector<uint8_t>(1 << 20));
    auto* mem = node.get();
    mem->max_size_bytes = 64 * 1024; // writes past 64 KiB fail with ENOSPC
    DriveConfig cfg;
    cfg.id = "ide0-hd0";
    cfg.werror = BlockErrorAction::StopOnEnospc;
    Drive* d = add_drive(Drive::from_node(*ctx, cfg, std::move(node)));
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    std::vector<uint8_t> buf(512, 0xab);
    lba28(0, 1000, 1); // 512000: past the limit
    command(0, k_cmd_write_sectors);
    write_data(0, buf.data(), 512);
    run_until([&] { return !stops.empty(); });
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_NE(stops[0].find("No space left on device"), std::string::npos) << stops[0];
    EXPECT_NE(stops[0].find("werror=enospc"), std::string::npos) << stops[0];
    EXPECT_TRUE(alt_status() & k_bsy); // the guest sees the request still running
    EXPECT_EQ(d->stopped_requests(), 1u);
    // Space appears; the VM continues and the write lands.
    mem->max_size_bytes = 0;
    ide->resume();
    ASSERT_TRUE(wait_ready());
    EXPECT_EQ(status() & k_err, 0);
    EXPECT_EQ(mem->data()[1000 * 512], 0xab);
}

TEST_F(AtaTest, WerrorReportAndIgnore)
{
    auto node = std::make_unique<block::test::MemNode>(*ctx, std::vector<uint8_t>(1 << 20));
    node->fail_writes_after = 0;
    DriveConfig cfg;
    cfg.id = "d";
    cfg.werror = BlockErrorAction::StopOnEnospc; // EIO is reported under enospc
    Drive* d = add_drive(Drive::from_node(*ctx, cfg, std::move(node)));
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    std::vector<uint8_t> buf(512, 1);
    lba28(0, 0, 1);
    command(0, k_cmd_write_sectors);
    write_data(0, buf.data(), 512);
    ASSERT_TRUE(wait_ready());
    EXPECT_TRUE(status() & k_err);
    EXPECT_EQ(bus.inb(0x1f1), k_abrt);
    EXPECT_TRUE(stops.empty());
}

TEST_F(AtaTest, ReadOnlyDriveIsRefusedAsQemuDoes)
{
    // ATA has no write protection to report, so QEMU refuses readonly=on
    // for ide-hd with this message; Kiln does the same.
    DriveConfig cfg;
    cfg.id = "ro";
    cfg.file = make_raw("ro.raw", 1 << 20);
    cfg.format = "raw";
    cfg.read_only = true;
    Drive* d = open_drive(cfg);
    auto r = ide->channel(0).attach(0, IdeKind::Disk, d, "");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Block node is read-only");
    EXPECT_TRUE(ide->channel(0).attach(0, IdeKind::Cdrom, d, "").ok());
}

TEST_F(AtaTest, StateRoundTrip)
{
    Drive* d = disk(1 << 20);
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, d, "").ok());
    bus.outb(0x1f2, 8);
    command(0, k_cmd_set_multiple);
    PiixIde other(bus.irq[14], bus.irq[15], bus.pio, io);
    // BAR4 would collide with ide's mapping: moving it is the loader's job.
    ide->config_write(0x04, 2, 0);
    state_round_trip(*ide, other);
    EXPECT_EQ(other.channel(0).unit(0).mult_sectors, 8u);
}

} // namespace
} // namespace kiln::hw::test
