// virtio-blk test fixture: a VirtioPci + VirtioBlk on the harness buses and
// a tiny split-ring driver in guest RAM (descriptor table, avail and used
// rings at fixed addresses) that builds requests the way Linux does.
#pragma once

#include <cstring>

#include "hw/virtio/virtio_blk.h"
#include "hw/virtio/virtio_pci.h"
#include "tests/unit/hw/block/disk_fixture.h"

namespace kiln::hw::test {

class MsiRecorder final : public MsiSink {
public:
    void deliver_msi(uint64_t address, uint32_t data) override { messages.push_back({ address, data }); }
    std::vector<std::pair<uint64_t, uint32_t>> messages;
};

class VirtioFixture : public DiskFixture {
protected:
    static constexpr uint16_t k_io = 0xc080;
    static constexpr uint64_t k_msix = 0xfe000000, k_bar4 = 0xfe100000;
    static constexpr uint64_t k_desc = 0x10000, k_avail = 0x20000, k_used = 0x30000, k_bufs = 0x100000;
    static constexpr uint16_t k_qsize = 16;

    void make_device(Drive* d, VirtioBlkConfig cfg = {})
    {
        blk = std::make_unique<VirtioBlk>(*d, cfg, io);
        pci = std::make_unique<VirtioPci>(
            *blk, *memory, bus.irq[11], &msi, VirtioPciBuses { &bus.pio, &bus.mmio }, "virtio-blk-pci");
        pci->config_write(0x10, 4, k_io);
        pci->config_write(0x14, 4, uint32_t(k_msix));
        pci->config_write(0x20, 4, uint32_t(k_bar4));
        pci->config_write(0x24, 4, 0);
        pci->config_write(0x04, 2, 0x0007);
    }
    void TearDown() override
    {
        run_idle(5);
        DiskFixture::TearDown();
        pci.reset();
        blk.reset();
    }
    Drive* raw_disk(uint64_t bytes, bool fill = true)
    {
        DriveConfig cfg;
        cfg.id = "virtio0";
        cfg.file = make_raw("disk.raw", bytes, fill);
        cfg.format = "raw";
        cfg.discard = DiscardMode::Unmap;
        return open_drive(cfg);
    }

    // Common configuration access.
    uint32_t common32(unsigned off) { return uint32_t(bus.mmio.read(k_bar4 + off, 4)); }
    void common32(unsigned off, uint32_t v) { bus.mmio.write(k_bar4 + off, 4, v); }
    void common16(unsigned off, uint16_t v) { bus.mmio.write(k_bar4 + off, 2, v); }
    uint16_t common16(unsigned off) { return uint16_t(bus.mmio.read(k_bar4 + off, 2)); }
    void status(uint8_t v) { bus.mmio.write(k_bar4 + 0x14, 1, v); }
    uint8_t status() { return uint8_t(bus.mmio.read(k_bar4 + 0x14, 1)); }
    uint64_t device_features()
    {
        common32(0x00, 0);
        uint64_t lo = common32(0x04);
        common32(0x00, 1);
        return lo | uint64_t(common32(0x04)) << 32;
    }

    // Modern initialisation (virtio 1.x 3.1.1) with queue 0 at the fixed addresses.
    void init_modern(uint64_t features, uint16_t vector = 0xffff)
    {
        status(0);
        status(virtio::k_status_acknowledge | virtio::k_status_driver);
        common32(0x08, 0);
        common32(0x0c, uint32_t(features));
        common32(0x08, 1);
        common32(0x0c, uint32_t(features >> 32));
        status(virtio::k_status_acknowledge | virtio::k_status_driver | virtio::k_status_features_ok);
        ASSERT_TRUE(status() & virtio::k_status_features_ok);
        m_features = features;
        for (uint64_t a = k_desc; a < k_used + 0x1000; a += 8)
            ASSERT_TRUE(memory->write_value<uint64_t>(a, 0).ok());
        common16(0x16, 0);
        common16(0x18, k_qsize);
        common16(0x1a, vector);
        common32(0x20, uint32_t(k_desc));
        common32(0x24, 0);
        common32(0x28, uint32_t(k_avail));
        common32(0x2c, 0);
        common32(0x30, uint32_t(k_used));
        common32(0x34, 0);
        common16(0x1c, 1);
        status(virtio::k_status_acknowledge | virtio::k_status_driver | virtio::k_status_features_ok
            | virtio::k_status_driver_ok);
        m_avail_idx = 0;
        m_used_seen = 0;
        m_next_desc = 0;
    }

    struct Buf {
        uint64_t gpa;
        uint32_t len;
        bool writable;
    };
    void put_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
    {
        ASSERT_TRUE(memory->write_value<uint64_t>(table + 16 * i, addr).ok());
        ASSERT_TRUE(memory->write_value<uint32_t>(table + 16 * i + 8, len).ok());
        ASSERT_TRUE(memory->write_value<uint16_t>(table + 16 * i + 12, flags).ok());
        ASSERT_TRUE(memory->write_value<uint16_t>(table + 16 * i + 14, next).ok());
    }
    // Adds a chain (direct, or through an indirect table at `indirect`).
    uint16_t add_chain(const std::vector<Buf>& bufs, uint64_t indirect = 0)
    {
        uint16_t head = m_next_desc;
        if (indirect) {
            for (size_t i = 0; i < bufs.size(); i++)
                put_desc(indirect, uint16_t(i), bufs[i].gpa, bufs[i].len,
                    uint16_t((bufs[i].writable ? 2 : 0) | (i + 1 < bufs.size() ? 1 : 0)), uint16_t(i + 1));
            put_desc(k_desc, head, indirect, uint32_t(16 * bufs.size()), 4, 0);
            m_next_desc = uint16_t((m_next_desc + 1) % k_qsize);
        } else {
            for (size_t i = 0; i < bufs.size(); i++) {
                uint16_t idx = uint16_t((head + i) % k_qsize);
                put_desc(k_desc, idx, bufs[i].gpa, bufs[i].len,
                    uint16_t((bufs[i].writable ? 2 : 0) | (i + 1 < bufs.size() ? 1 : 0)),
                    uint16_t((idx + 1) % k_qsize));
            }
            m_next_desc = uint16_t((head + bufs.size()) % k_qsize);
        }
        publish(head);
        return head;
    }
    void publish(uint16_t head)
    {
        EXPECT_TRUE(memory->write_value<uint16_t>(k_avail + 4 + 2 * (m_avail_idx % k_qsize), head).ok());
        m_avail_idx++;
        EXPECT_TRUE(memory->write_value<uint16_t>(k_avail + 2, m_avail_idx).ok());
    }
    void kick(unsigned q = 0) { bus.mmio.write(k_bar4 + VirtioPci::k_notify_offset + 4 * q, 2, q); }
    uint16_t used_idx() { return memory->read_value<uint16_t>(k_used + 2).value(); }
    // Waits for `n` more used entries; returns their lengths.
    std::vector<uint32_t> wait_used(unsigned n)
    {
        uint16_t target = uint16_t(m_used_seen + n);
        EXPECT_TRUE(run_until([&] { return uint16_t(used_idx() - target) < 0x8000; }));
        std::vector<uint32_t> lens;
        for (; m_used_seen != target; m_used_seen++)
            lens.push_back(memory->read_value<uint32_t>(k_used + 4 + 8 * (m_used_seen % k_qsize) + 4).value());
        return lens;
    }

    // A virtio-blk request: header at `at`, data, status byte after it.
    // Returns the status byte's address.
    uint64_t request(uint32_t type, uint64_t sector, uint64_t data, uint32_t data_len, bool data_in, uint64_t at,
        uint64_t indirect = 0)
    {
        EXPECT_TRUE(memory->write_value<uint32_t>(at, type).ok());
        EXPECT_TRUE(memory->write_value<uint32_t>(at + 4, 0).ok());
        EXPECT_TRUE(memory->write_value<uint64_t>(at + 8, sector).ok());
        uint64_t st = at + 16;
        EXPECT_TRUE(memory->write_value<uint8_t>(st, 0xff).ok());
        std::vector<Buf> bufs { { at, 16, false } };
        if (data_len)
            bufs.push_back({ data, data_len, data_in });
        bufs.push_back({ st, 1, true });
        add_chain(bufs, indirect);
        return st;
    }
    uint8_t byte_at(uint64_t gpa) { return memory->read_value<uint8_t>(gpa).value(); }

    MsiRecorder msi;
    std::unique_ptr<VirtioBlk> blk;
    std::unique_ptr<VirtioPci> pci;
    uint64_t m_features = 0;
    uint16_t m_avail_idx = 0, m_used_seen = 0, m_next_desc = 0;
};

} // namespace kiln::hw::test
