// IDE test fixture: a PIIX3 IDE function on the harness's port bus with
// its legacy ports, BAR4 at 0xc000, and helpers that drive the task file
// the way ata_piix and SeaBIOS do.
#pragma once

#include "hw/ide/ata_defs.h"
#include "hw/ide/piix_ide.h"
#include "tests/unit/hw/block/disk_fixture.h"

namespace kiln::hw::test {

class IdeFixture : public DiskFixture {
protected:
    static constexpr uint16_t k_bm = 0xc000;

    void make_controller()
    {
        ide = std::make_unique<PiixIde>(bus.irq[14], bus.irq[15], bus.pio, io);
        bus.map_pio(0x1f0, 8, ide->channel(0).command_block());
        bus.map_pio(0x3f6, 1, ide->channel(0).control_block());
        bus.map_pio(0x170, 8, ide->channel(1).command_block());
        bus.map_pio(0x376, 1, ide->channel(1).control_block());
        ide->config_write(0x20, 4, k_bm);
        ide->config_write(0x04, 2, 0x0005); // I/O + bus master
    }
    void TearDown() override
    {
        run_idle(5);
        DiskFixture::TearDown();
        ide.reset();
    }

    Drive* disk(uint64_t bytes, const std::string& name = "disk.raw", bool fill = true)
    {
        DriveConfig cfg;
        cfg.id = name;
        cfg.file = make_raw(name, bytes, fill);
        cfg.format = "raw";
        return open_drive(cfg);
    }

    // Port base of a channel.
    static uint16_t cmd(unsigned ch) { return ch ? 0x170 : 0x1f0; }
    uint8_t status(unsigned ch = 0) { return bus.inb(cmd(ch) + 7); }
    uint8_t alt_status(unsigned ch = 0) { return bus.inb(ch ? 0x376 : 0x3f6); }

    // Waits until BSY clears (completion ran on the loop).
    bool wait_ready(unsigned ch = 0)
    {
        return run_until([&] { return !(alt_status(ch) & ata::k_bsy); });
    }

    void select(unsigned ch, unsigned unit, uint8_t extra = ata::k_dev_lba)
    {
        bus.outb(cmd(ch) + 6, uint8_t(0xa0 | extra | (unit ? ata::k_dev_slave : 0)));
    }
    void lba28(unsigned ch, uint32_t lba, uint8_t count)
    {
        bus.outb(cmd(ch) + 2, count);
        bus.outb(cmd(ch) + 3, uint8_t(lba));
        bus.outb(cmd(ch) + 4, uint8_t(lba >> 8));
        bus.outb(cmd(ch) + 5, uint8_t(lba >> 16));
        bus.outb(cmd(ch) + 6, uint8_t(0xe0 | ((lba >> 24) & 0xf)));
    }
    void lba48(unsigned ch, uint64_t lba, uint16_t count)
    {
        bus.outb(cmd(ch) + 2, uint8_t(count >> 8));
        bus.outb(cmd(ch) + 3, uint8_t(lba >> 24));
        bus.outb(cmd(ch) + 4, uint8_t(lba >> 32));
        bus.outb(cmd(ch) + 5, uint8_t(lba >> 40));
        bus.outb(cmd(ch) + 2, uint8_t(count));
        bus.outb(cmd(ch) + 3, uint8_t(lba));
        bus.outb(cmd(ch) + 4, uint8_t(lba >> 8));
        bus.outb(cmd(ch) + 5, uint8_t(lba >> 16));
        bus.outb(cmd(ch) + 6, 0xe0);
    }
    void command(unsigned ch, uint8_t c) { bus.outb(cmd(ch) + 7, c); }

    std::vector<uint8_t> read_data(unsigned ch, size_t bytes)
    {
        std::vector<uint8_t> out;
        for (size_t i = 0; i < bytes; i += 2) {
            uint16_t w = bus.inw(cmd(ch));
            out.push_back(uint8_t(w));
            out.push_back(uint8_t(w >> 8));
        }
        return out;
    }
    void write_data(unsigned ch, const uint8_t* data, size_t bytes)
    {
        for (size_t i = 0; i < bytes; i += 2)
            bus.outw(cmd(ch), uint16_t(data[i] | data[i + 1] << 8));
    }

    // A PRD table at `table` with the given (address, bytes) entries; the
    // last one gets the end-of-table bit unless `terminate` is false.
    void prd(uint64_t table, const std::vector<std::pair<uint32_t, uint32_t>>& entries, bool terminate = true)
    {
        for (size_t i = 0; i < entries.size(); i++) {
            uint32_t ctl = entries[i].second & 0xffff;
            if (terminate && i + 1 == entries.size())
                ctl |= 0x80000000u;
            ASSERT_TRUE(memory->write_value<uint32_t>(table + 8 * i, entries[i].first).ok());
            ASSERT_TRUE(memory->write_value<uint32_t>(table + 8 * i + 4, ctl).ok());
        }
        bus.outl(k_bm + 4, uint32_t(table));
    }
    void bm_start(bool to_memory) { bus.outb(k_bm, uint8_t(0x01 | (to_memory ? 0x08 : 0))); }
    uint8_t bm_status() { return bus.inb(k_bm + 2); }

    std::unique_ptr<PiixIde> ide;
};

} // namespace kiln::hw::test
