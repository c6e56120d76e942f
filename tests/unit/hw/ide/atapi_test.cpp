// ATAPI CD-ROM through the PIIX3 IDE function: signature, IDENTIFY PACKET,
// INQUIRY, READ CAPACITY, READ(10) by PIO and DMA, READ TOC, MODE SENSE,
// GET CONFIGURATION, GET EVENT STATUS, media change and tray locking. The
// image is a synthetic file of 2048-byte sectors, each stamped with its LBA.
#include <cstring>
#include <fstream>

#include "tests/unit/hw/ide/ide_fixture.h"

namespace kiln::hw::test {
namespace {

using namespace ata;

class AtapiTest : public IdeFixture {
protected:
    void SetUp() override
    {
        IdeFixture::SetUp();
        make_controller();
    }
    // Sector n holds "LBA n" then bytes (n + i) & 0xff.
    std::string make_iso(const std::string& name, uint32_t sectors)
    {
        std::string p = path(name);
        std::ofstream out(p, std::ios::binary);
        std::vector<char> s(2048);
        for (uint32_t n = 0; n < sectors; n++) {
            for (size_t i = 0; i < s.size(); i++)
                s[i] = char((n + i) & 0xff);
            std::snprintf(s.data(), 16, "LBA %u", n);
            out.write(s.data(), 2048);
        }
        return p;
    }
    Drive* cdrom(uint32_t sectors)
    {
        DriveConfig cfg;
        cfg.id = "ide1-cd0";
        cfg.media = DriveMedia::Cdrom;
        cfg.read_only = true;
        cfg.file = make_iso("cd.iso", sectors);
        cfg.format = "raw";
        Drive* d = open_drive(cfg);
        EXPECT_TRUE(ide->channel(1).attach(0, IdeKind::Cdrom, d, "").ok());
        return d;
    }
    // Sends a packet; returns the data phase (PIO) and leaves the final
    // status for the caller.
    std::vector<uint8_t> packet(std::vector<uint8_t> cdb, uint16_t byte_limit = 0xfffe)
    {
        cdb.resize(12, 0);
        bus.outb(0x171, 0); // PIO
        bus.outb(0x174, uint8_t(byte_limit));
        bus.outb(0x175, uint8_t(byte_limit >> 8));
        command(1, k_cmd_packet);
        EXPECT_TRUE(status(1) & k_drq);
        EXPECT_EQ(bus.inb(0x172) & 3, k_ireason_cod);
        write_data(1, cdb.data(), 12);
        std::vector<uint8_t> data;
        for (int guard = 0; guard < 100000; guard++) {
            EXPECT_TRUE(wait_ready(1));
            uint8_t st = status(1);
            if (!(st & k_drq))
                break;
            EXPECT_EQ(bus.inb(0x172) & 3, k_ireason_io);
            size_t n = bus.inb(0x174) | bus.inb(0x175) << 8;
            auto chunk = read_data(1, n);
            chunk.resize(n);
            data.insert(data.end(), chunk.begin(), chunk.end());
        }
        return data;
    }
    uint8_t sense_key()
    {
        auto s = packet({ 0x03, 0, 0, 0, 18 });
        return s.size() >= 3 ? s[2] & 0x0f : 0xff;
    }
    static std::vector<uint8_t> read10(uint32_t lba, uint16_t count)
    {
        return { 0x28, 0, uint8_t(lba >> 24), uint8_t(lba >> 16), uint8_t(lba >> 8), uint8_t(lba), 0,
            uint8_t(count >> 8), uint8_t(count) };
    }
};

TEST_F(AtapiTest, SignatureAndIdentifyPacket)
{
    cdrom(100);
    select(1, 0, 0);
    command(1, k_cmd_identify);
    EXPECT_TRUE(status(1) & k_err);
    EXPECT_EQ(bus.inb(0x174), 0x14);
    EXPECT_EQ(bus.inb(0x175), 0xeb);
    command(1, k_cmd_identify_packet);
    EXPECT_TRUE(status(1) & k_drq);
    auto id = read_data(1, 512);
    EXPECT_EQ(id[0] | id[1] << 8, 0x85c0);
    std::string model;
    for (int i = 0; i < 12; i += 2) {
        model += char(id[54 + i + 1]);
        model += char(id[54 + i]);
    }
    EXPECT_EQ(model, "QEMU DVD-ROM");
}

TEST_F(AtapiTest, InquiryAndReadCapacity)
{
    cdrom(1234);
    packet({ 0x00 }); // a disc present at power-on is simply ready
    EXPECT_FALSE(status(1) & k_err);
    auto inq = packet({ 0x12, 0, 0, 0, 36 });
    ASSERT_EQ(inq.size(), 36u);
    EXPECT_EQ(inq[0], 0x05);
    EXPECT_EQ(inq[1], 0x80);
    EXPECT_EQ(std::string(inq.begin() + 16, inq.begin() + 28), "QEMU DVD-ROM");
    EXPECT_FALSE(status(1) & k_err);
    EXPECT_EQ(bus.inb(0x172) & 3, k_ireason_io | k_ireason_cod);
    auto cap = packet({ 0x25 });
    ASSERT_EQ(cap.size(), 8u);
    EXPECT_EQ(uint32_t(cap[0] << 24 | cap[1] << 16 | cap[2] << 8 | cap[3]), 1233u);
    EXPECT_EQ(uint32_t(cap[4] << 24 | cap[5] << 16 | cap[6] << 8 | cap[7]), 2048u);
    // Allocation length truncates the answer.
    EXPECT_EQ(packet({ 0x12, 0, 0, 0, 5 }).size(), 5u);
}

TEST_F(AtapiTest, Read10ByPioInByteCountChunks)
{
    cdrom(200);
    packet({ 0x00 });
    (void)sense_key();
    auto data = packet(read10(37, 20), 8192); // 40 KiB in 8 KiB DRQ blocks
    ASSERT_EQ(data.size(), 20u * 2048);
    for (uint32_t n = 0; n < 20; n++) {
        char label[16];
        std::snprintf(label, sizeof label, "LBA %u", 37 + n);
        EXPECT_STREQ(reinterpret_cast<const char*>(&data[n * 2048]), label);
        EXPECT_EQ(data[n * 2048 + 2047], uint8_t((37 + n + 2047) & 0xff));
    }
    EXPECT_FALSE(status(1) & k_err);
    // Past the end: ILLEGAL REQUEST, LBA out of range.
    packet(read10(199, 2));
    EXPECT_TRUE(status(1) & k_err);
    auto s = packet({ 0x03, 0, 0, 0, 18 });
    EXPECT_EQ(s[2], k_sense_illegal_request);
    EXPECT_EQ(s[12], k_asc_lba_out_of_range);
}

TEST_F(AtapiTest, Read12ByDma)
{
    cdrom(64);
    packet({ 0x00 });
    (void)sense_key();
    // PRD table for 3 sectors.
    ASSERT_TRUE(memory->write_value<uint32_t>(0x1000, 0x40000).ok());
    ASSERT_TRUE(memory->write_value<uint32_t>(0x1004, 0x80000000u | 6144).ok());
    bus.outl(k_bm + 8 + 4, 0x1000);
    bus.outb(0x171, 1); // DMA
    command(1, k_cmd_packet);
    std::vector<uint8_t> cdb = { 0xa8, 0, 0, 0, 0, 10, 0, 0, 0, 3, 0, 0 };
    write_data(1, cdb.data(), 12);
    bus.outb(k_bm + 8, 0x09);
    ASSERT_TRUE(wait_ready(1));
    EXPECT_FALSE(status(1) & k_err);
    EXPECT_EQ(bus.inb(k_bm + 8 + 2) & 0x07, 0x04);
    char label[16] = {};
    ASSERT_TRUE(memory->read(0x40000 + 2 * 2048, label, 8).ok());
    EXPECT_STREQ(label, "LBA 12");
}

TEST_F(AtapiTest, TocModeSenseConfigurationAndEvents)
{
    cdrom(3000);
    packet({ 0x00 });
    (void)sense_key();
    auto toc = packet({ 0x43, 0, 0, 0, 0, 0, 0, 0, 100 });
    ASSERT_EQ(toc.size(), 20u);
    EXPECT_EQ(toc[1], 18);
    EXPECT_EQ(toc[6], 1); // track 1
    EXPECT_EQ(toc[14], 0xaa); // lead-out
    EXPECT_EQ(uint32_t(toc[16] << 24 | toc[17] << 16 | toc[18] << 8 | toc[19]), 3000u);
    auto msf = packet({ 0x43, 2, 0, 0, 0, 0, 0, 0, 100 });
    EXPECT_EQ(msf[9], 0);
    EXPECT_EQ(msf[10], 2); // 00:02:00
    auto session = packet({ 0x43, 0, 1, 0, 0, 0, 0, 0, 12 });
    ASSERT_EQ(session.size(), 12u);
    EXPECT_EQ(session[1], 10);
    auto mode = packet({ 0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 255 });
    ASSERT_GE(mode.size(), 8u + 28);
    EXPECT_EQ(mode[8], 0x2a);
    auto conf = packet({ 0x46, 0, 0, 0, 0, 0, 0, 0, 255 });
    ASSERT_GE(conf.size(), 8u);
    EXPECT_EQ(conf[6] << 8 | conf[7], 0x0008); // CD-ROM profile
    auto ev = packet({ 0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8 });
    ASSERT_EQ(ev.size(), 8u);
    EXPECT_EQ(ev[2], 0x04);
    EXPECT_EQ(ev[4], 2); // new media (reported once)
    EXPECT_EQ(ev[5], 0x02);
    auto ev2 = packet({ 0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8 });
    EXPECT_EQ(ev2[4], 0);
    packet({ 0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8 }); // asynchronous mode: refused
    EXPECT_TRUE(status(1) & k_err);
    packet({ 0xee });
    EXPECT_EQ(sense_key(), k_sense_illegal_request);
}

TEST_F(AtapiTest, MediaChangeRaisesUnitAttentionAndLockPreventsEject)
{
    Drive* d = cdrom(100);
    packet({ 0x00 });
    EXPECT_FALSE(status(1) & k_err);

    // Locked tray: eject is refused.
    packet({ 0x1e, 0, 0, 0, 1 });
    packet({ 0x1b, 0, 0, 0, 0x02 });
    EXPECT_TRUE(status(1) & k_err);
    packet({ 0x1e, 0, 0, 0, 0 });
    packet({ 0x1b, 0, 0, 0, 0x02 });
    EXPECT_FALSE(status(1) & k_err);
    run_until([&] { return !d->has_medium(); });
    packet({ 0x00 });
    EXPECT_EQ(sense_key(), k_sense_unit_attention);
    packet({ 0x00 });
    auto s = packet({ 0x03, 0, 0, 0, 18 });
    EXPECT_EQ(s[2], k_sense_not_ready);
    EXPECT_EQ(s[12], k_asc_medium_not_present);

    // A new disc: unit attention, then reads see it.
    std::string other = make_iso("other.iso", 10);
    auto r = loop->run_until_complete(d->change_medium(other, "raw"));
    ASSERT_TRUE(r.ok()) << r.error().message();
    packet(read10(0, 1));
    EXPECT_EQ(sense_key(), k_sense_unit_attention);
    auto cap = packet({ 0x25 });
    ASSERT_EQ(cap.size(), 8u);
    EXPECT_EQ(cap[3], 9);
}

TEST_F(AtapiTest, EmptyDriveIsNotReady)
{
    DriveConfig cfg;
    cfg.id = "cd";
    cfg.media = DriveMedia::Cdrom;
    Drive* d = open_drive(cfg);
    ASSERT_TRUE(ide->channel(1).attach(0, IdeKind::Cdrom, d, "").ok());
    packet({ 0x00 });
    EXPECT_TRUE(status(1) & k_err);
    auto s = packet({ 0x03, 0, 0, 0, 18 });
    EXPECT_EQ(s[2], k_sense_not_ready);
    auto inq = packet({ 0x12, 0, 0, 0, 36 });
    EXPECT_EQ(inq.size(), 36u);
}

TEST_F(AtapiTest, EachDeviceShowsItsOwnSignatureAfterReset)
{
    DriveConfig hd;
    hd.id = "hd";
    hd.file = make_raw("hd.raw", 1 << 20);
    hd.format = "raw";
    ASSERT_TRUE(ide->channel(0).attach(0, IdeKind::Disk, open_drive(hd), "").ok());
    DriveConfig cd;
    cd.id = "cd";
    cd.media = DriveMedia::Cdrom;
    ASSERT_TRUE(ide->channel(0).attach(1, IdeKind::Cdrom, open_drive(cd), "").ok());
    bus.outb(0x3f6, k_srst);
    bus.outb(0x3f6, 0);
    select(0, 1, 0);
    EXPECT_EQ(bus.inb(0x1f4), 0x14);
    EXPECT_EQ(bus.inb(0x1f5), 0xeb);
    EXPECT_EQ(bus.inb(0x1f6) & k_dev_slave, k_dev_slave);
    select(0, 0, 0);
    EXPECT_EQ(bus.inb(0x1f4), 0);
    EXPECT_EQ(bus.inb(0x1f5), 0);
    EXPECT_EQ(bus.inb(0x1f2), 1);
    EXPECT_EQ(status(0), k_drdy | k_dsc);
}

TEST_F(AtapiTest, DeviceResetRestoresSignature)
{
    cdrom(10);
    bus.outb(0x174, 0);
    command(1, k_cmd_device_reset);
    EXPECT_EQ(bus.inb(0x174), 0x14);
    EXPECT_EQ(bus.inb(0x175), 0xeb);
}

} // namespace
} // namespace kiln::hw::test
