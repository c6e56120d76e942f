// virtio-blk over the virtio-pci transport: feature negotiation, config
// space, read/write/flush/discard/write-zeroes/get-id, indirect
// descriptors, EVENT_IDX, MSI-X and INTx, the legacy interface, requests
// in flight at once, qcow2 images and werror=stop.
#include <fstream>

#include "tests/unit/hw/virtio/virtio_fixture.h"
#include "tests/unit/qcow2/mem_node.h"

namespace kiln::hw::test {
namespace {

using namespace virtio;
using B = VirtioBlk;

constexpr uint64_t k_base
    = B::k_f_seg_max | B::k_f_blk_size | B::k_f_flush | B::k_f_discard | B::k_f_write_zeroes | k_f_version_1;

class VirtioBlkTest : public VirtioFixture {
protected:
    std::vector<uint8_t> file_bytes(uint64_t off, size_t n)
    {
        std::ifstream in(path("disk.raw"), std::ios::binary);
        in.seekg(std::streamoff(off));
        std::vector<uint8_t> v(n);
        in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n));
        return v;
    }
};

TEST_F(VirtioBlkTest, PciIdentityCapabilitiesAndFeatures)
{
    make_device(raw_disk(1 << 20));
    EXPECT_EQ(pci->config_read(0x00, 2), 0x1af4u);
    EXPECT_EQ(pci->config_read(0x02, 2), 0x1001u);
    EXPECT_EQ(pci->config_read(0x2e, 2), 2u);
    // Walk the capability list: MSI-X plus the four virtio structures.
    std::vector<unsigned> types;
    bool msix = false;
    for (unsigned p = pci->config_read(0x34, 1); p; p = pci->config_read(p + 1, 1)) {
        if (pci->config_read(p, 1) == 0x11)
            msix = true;
        else if (pci->config_read(p, 1) == 0x09)
            types.push_back(pci->config_read(p + 3, 1));
    }
    EXPECT_TRUE(msix);
    std::sort(types.begin(), types.end());
    EXPECT_EQ(types, (std::vector<unsigned> { 1, 2, 3, 4 }));
    uint64_t f = device_features();
    for (uint64_t bit : { B::k_f_size_max, B::k_f_seg_max, B::k_f_blk_size, B::k_f_flush, B::k_f_topology,
             B::k_f_discard, B::k_f_write_zeroes, k_f_indirect_desc, k_f_event_idx, k_f_version_1 })
        EXPECT_TRUE(f & bit) << bit;
    EXPECT_FALSE(f & B::k_f_ro);
    // Capacity in 512-byte sectors at device config offset 0.
    EXPECT_EQ(bus.mmio.read(k_bar4 + VirtioPci::k_device_offset, 8), (1u << 20) / 512);
    EXPECT_EQ(bus.mmio.read(k_bar4 + VirtioPci::k_device_offset + 12, 4), 254u); // seg_max
}

TEST_F(VirtioBlkTest, UnofferedFeatureLeavesFeaturesOkClear)
{
    make_device(raw_disk(1 << 20));
    status(k_status_acknowledge | k_status_driver);
    common32(0x08, 0);
    common32(0x0c, 1u << 7); // a bit the device does not offer
    status(k_status_acknowledge | k_status_driver | k_status_features_ok);
    EXPECT_FALSE(status() & k_status_features_ok);
}

TEST_F(VirtioBlkTest, ReadWriteFlushWithIntx)
{
    Drive* d = raw_disk(1 << 20);
    make_device(d);
    init_modern(k_base);
    // Write 2 sectors at sector 10.
    std::vector<uint8_t> data(1024);
    for (size_t i = 0; i < data.size(); i++)
        data[i] = uint8_t(i * 13);
    ASSERT_TRUE(memory->write(k_bufs, data.data(), data.size()).ok());
    uint64_t st = request(B::k_t_out, 10, k_bufs, 1024, false, 0x50000);
    kick();
    auto lens = wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(lens[0], 1u);
    EXPECT_TRUE(bus.irq[11].level());
    EXPECT_EQ(bus.mmio.read(k_bar4 + VirtioPci::k_isr_offset, 1), 1u); // read clears
    EXPECT_FALSE(bus.irq[11].level());
    EXPECT_EQ(file_bytes(10 * 512, 1024), data);

    // Read them back into another buffer.
    st = request(B::k_t_in, 10, k_bufs + 0x10000, 1024, true, 0x50100);
    kick();
    lens = wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(lens[0], 1025u);
    std::vector<uint8_t> back(1024);
    ASSERT_TRUE(memory->read(k_bufs + 0x10000, back.data(), back.size()).ok());
    EXPECT_EQ(back, data);

    uint64_t flushes = d->backend()->stats().flush_operations;
    st = request(B::k_t_flush, 0, 0, 0, false, 0x50200);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(d->backend()->stats().flush_operations, flushes + 1);

    // Past the end: IOERR; unknown type: UNSUPP.
    st = request(B::k_t_in, 2047, k_bufs, 1024, true, 0x50300);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ioerr);
    st = request(99, 0, 0, 0, false, 0x50400);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_unsupp);
}

TEST_F(VirtioBlkTest, DiscardWriteZeroesAndGetId)
{
    Drive* d = raw_disk(1 << 20);
    VirtioBlkConfig cfg;
    cfg.serial = "virtio-serial-0123456789"; // longer than 20: cut
    make_device(d, cfg);
    init_modern(k_base);
    // WRITE ZEROES sectors 4..7, with the unmap flag.
    uint8_t seg[16] = {};
    uint64_t s = 4;
    uint32_t n = 4, flags = 1;
    std::memcpy(seg, &s, 8);
    std::memcpy(seg + 8, &n, 4);
    std::memcpy(seg + 12, &flags, 4);
    ASSERT_TRUE(memory->write(k_bufs, seg, 16).ok());
    uint64_t st = request(B::k_t_write_zeroes, 0, k_bufs, 16, false, 0x50000);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(file_bytes(4 * 512, 2048), std::vector<uint8_t>(2048, 0));
    EXPECT_EQ(file_bytes(8 * 512, 1)[0], pattern(8 * 512));
    EXPECT_EQ(d->backend()->stats().zero_operations, 1u);

    // DISCARD sectors 100..163.
    s = 100;
    n = 64;
    flags = 0;
    std::memcpy(seg, &s, 8);
    std::memcpy(seg + 8, &n, 4);
    std::memcpy(seg + 12, &flags, 4);
    ASSERT_TRUE(memory->write(k_bufs, seg, 16).ok());
    st = request(B::k_t_discard, 0, k_bufs, 16, false, 0x50100);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(d->backend()->stats().unmap_operations, 1u);
    // Discard with flags set is unsupported.
    flags = 1;
    std::memcpy(seg + 12, &flags, 4);
    ASSERT_TRUE(memory->write(k_bufs, seg, 16).ok());
    st = request(B::k_t_discard, 0, k_bufs, 16, false, 0x50200);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_unsupp);

    st = request(B::k_t_get_id, 0, k_bufs, 20, true, 0x50300);
    kick();
    auto lens = wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(lens[0], 21u);
    char id[21] = {};
    ASSERT_TRUE(memory->read(k_bufs, id, 20).ok());
    EXPECT_EQ(std::string(id), "virtio-serial-012345");
}

TEST_F(VirtioBlkTest, IndirectDescriptorsAndEventIdx)
{
    make_device(raw_disk(1 << 20));
    init_modern(k_base | k_f_indirect_desc | k_f_event_idx);
    // Driver asks for an interrupt only after used index 2 (used_event = 1).
    ASSERT_TRUE(memory->write_value<uint16_t>(k_avail + 4 + 2 * k_qsize, 1).ok());
    unsigned edges = bus.irq[11].rising_edges();
    uint64_t st1 = request(B::k_t_in, 1, k_bufs, 512, true, 0x50000, 0x60000);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st1), B::k_s_ok);
    EXPECT_EQ(byte_at(k_bufs), pattern(512));
    // The device published avail_event = its next index.
    EXPECT_EQ(memory->read_value<uint16_t>(k_used + 4 + 8 * k_qsize).value(), 1);
    EXPECT_EQ(bus.irq[11].rising_edges(), edges + 1); // first completion always signals
    (void)bus.mmio.read(k_bar4 + VirtioPci::k_isr_offset, 1);
    uint64_t st2 = request(B::k_t_in, 2, k_bufs + 512, 512, true, 0x50100, 0x60100);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st2), B::k_s_ok);
    EXPECT_EQ(bus.irq[11].rising_edges(), edges + 2); // used idx 2 passed used_event 1
    (void)bus.mmio.read(k_bar4 + VirtioPci::k_isr_offset, 1);
    // used_event left at 1: the third completion stays quiet.
    uint64_t st3 = request(B::k_t_in, 3, k_bufs + 1024, 512, true, 0x50200, 0x60200);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st3), B::k_s_ok);
    EXPECT_EQ(bus.irq[11].rising_edges(), edges + 2);
}

TEST_F(VirtioBlkTest, MsixDeliveryMaskAndPending)
{
    make_device(raw_disk(1 << 20));
    // Enable MSI-X (message control bit 15) and program vector 1.
    unsigned cap = pci->config_read(0x34, 1);
    ASSERT_EQ(pci->config_read(cap, 1), 0x11u);
    pci->config_write(cap + 2, 2, 0x8000 | pci->config_read(cap + 2, 2));
    bus.mmio.write(k_msix + 16, 4, 0xfee00000);
    bus.mmio.write(k_msix + 20, 4, 0);
    bus.mmio.write(k_msix + 24, 4, 0x41);
    bus.mmio.write(k_msix + 28, 4, 0); // unmasked
    init_modern(k_base, 1);
    EXPECT_EQ(common16(0x1a), 1); // the vector stuck
    request(B::k_t_in, 0, k_bufs, 512, true, 0x50000);
    kick();
    wait_used(1);
    ASSERT_EQ(msi.messages.size(), 1u);
    EXPECT_EQ(msi.messages[0].first, 0xfee00000u);
    EXPECT_EQ(msi.messages[0].second, 0x41u);
    EXPECT_FALSE(bus.irq[11].level()); // no INTx while MSI-X is on

    // Masked: the PBA bit is set; unmasking delivers.
    bus.mmio.write(k_msix + 28, 4, 1);
    request(B::k_t_in, 0, k_bufs, 512, true, 0x50100);
    kick();
    wait_used(1);
    EXPECT_EQ(msi.messages.size(), 1u);
    EXPECT_EQ(bus.mmio.read(k_msix + MsixTable::k_pba_offset, 4) & 2, 2u);
    bus.mmio.write(k_msix + 28, 4, 0);
    EXPECT_EQ(msi.messages.size(), 2u);
    EXPECT_EQ(bus.mmio.read(k_msix + MsixTable::k_pba_offset, 4) & 2, 0u);
    // An out-of-range vector reads back as NO_VECTOR.
    common16(0x1a, 77);
    EXPECT_EQ(common16(0x1a), 0xffff);
}

TEST_F(VirtioBlkTest, ManyRequestsInFlight)
{
    make_device(raw_disk(1 << 20));
    init_modern(k_base | k_f_indirect_desc);
    for (unsigned i = 0; i < 8; i++)
        request(B::k_t_in, i * 8, k_bufs + i * 4096, 4096, true, 0x50000 + i * 0x100, 0x60000 + i * 0x100);
    kick();
    EXPECT_EQ(blk->in_flight(), 8u); // all started before any completed
    wait_used(8);
    EXPECT_EQ(blk->in_flight(), 0u);
    for (unsigned i = 0; i < 8; i++) {
        EXPECT_EQ(byte_at(0x50000 + i * 0x100 + 16), B::k_s_ok);
        EXPECT_EQ(byte_at(k_bufs + i * 4096 + 100), pattern(i * 4096 + 100));
    }
}

TEST_F(VirtioBlkTest, LegacyInterface)
{
    make_device(raw_disk(1 << 20));
    // Legacy: features at 0, status at 0x12, PFN at 0x08, notify at 0x10.
    EXPECT_EQ(bus.inl(k_io) & uint32_t(k_base), uint32_t(k_base)); // low 32 feature bits
    bus.outb(k_io + 0x12, k_status_acknowledge | k_status_driver);
    bus.outl(k_io + 0x04, uint32_t(k_base));
    EXPECT_EQ(bus.inw(k_io + 0x0c), 256); // queue size is fixed in legacy mode
    bus.outw(k_io + 0x0e, 0);
    uint64_t desc = 0x200000;
    bus.outl(k_io + 0x08, uint32_t(desc >> 12));
    bus.outb(k_io + 0x12, k_status_acknowledge | k_status_driver | k_status_driver_ok);
    uint64_t avail = desc + 16 * 256, used = (avail + 6 + 2 * 256 + 4095) & ~4095ull;
    // One request, three descriptors.
    ASSERT_TRUE(memory->write_value<uint32_t>(0x50000, B::k_t_in).ok());
    ASSERT_TRUE(memory->write_value<uint64_t>(0x50008, 3).ok());
    put_desc(desc, 0, 0x50000, 16, 1, 1);
    put_desc(desc, 1, k_bufs, 512, 3, 2);
    put_desc(desc, 2, 0x50010, 1, 2, 0);
    ASSERT_TRUE(memory->write_value<uint16_t>(avail + 4, 0).ok());
    ASSERT_TRUE(memory->write_value<uint16_t>(avail + 2, 1).ok());
    bus.outw(k_io + 0x10, 0);
    ASSERT_TRUE(run_until([&] { return memory->read_value<uint16_t>(used + 2).value() == 1; }));
    EXPECT_EQ(byte_at(0x50010), B::k_s_ok);
    EXPECT_EQ(byte_at(k_bufs), pattern(3 * 512));
    EXPECT_EQ(bus.inb(k_io + 0x13), 1); // ISR
    // Device config follows the 20-byte header when MSI-X is off.
    EXPECT_EQ(bus.inl(k_io + 20), (1u << 20) / 512);
}

TEST_F(VirtioBlkTest, Qcow2Image)
{
    std::string p = path("disk.qcow2");
    ASSERT_TRUE(loop->run_until_complete(ctx->create_image("qcow2", p, 4 << 20, {})).ok());
    DriveConfig cfg;
    cfg.id = "q";
    cfg.file = p;
    Drive* d = open_drive(cfg);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->backend()->root()->driver_name(), "qcow2");
    make_device(d);
    init_modern(k_base | k_f_indirect_desc);
    std::vector<uint8_t> data(8192, 0x77);
    ASSERT_TRUE(memory->write(k_bufs, data.data(), data.size()).ok());
    request(B::k_t_out, 1000, k_bufs, 8192, false, 0x50000, 0x60000);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(0x50010), B::k_s_ok);
    request(B::k_t_in, 1000, k_bufs + 0x10000, 8192, true, 0x50100, 0x60100);
    kick();
    wait_used(1);
    std::vector<uint8_t> back(8192);
    ASSERT_TRUE(memory->read(k_bufs + 0x10000, back.data(), back.size()).ok());
    EXPECT_EQ(back, data);
}

TEST_F(VirtioBlkTest, WerrorStopPausesThenCompletesOnResume)
{
    auto node = std::make_unique<block::test::MemNode>(*ctx, std::vector<uint8_t>(1 << 20));
    auto* mem = node.get();
    mem->max_size_bytes = 4096;
    DriveConfig cfg;
    cfg.id = "virtio0";
    cfg.werror = BlockErrorAction::Stop;
    Drive* d = add_drive(Drive::from_node(*ctx, cfg, std::move(node)));
    make_device(d);
    init_modern(k_base);
    std::vector<uint8_t> data(512, 0x5e);
    ASSERT_TRUE(memory->write(k_bufs, data.data(), 512).ok());
    uint64_t st = request(B::k_t_out, 100, k_bufs, 512, false, 0x50000);
    kick();
    ASSERT_TRUE(run_until([&] { return !stops.empty(); }));
    EXPECT_NE(stops[0].find("werror=stop"), std::string::npos) << stops[0];
    run_idle(10);
    EXPECT_EQ(used_idx(), 0); // not completed while paused
    EXPECT_EQ(blk->in_flight(), 1u);
    mem->max_size_bytes = 0;
    blk->resume();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ok);
    EXPECT_EQ(mem->data()[100 * 512], 0x5e);
}

TEST_F(VirtioBlkTest, ReadOnlyDrive)
{
    DriveConfig cfg;
    cfg.id = "ro";
    cfg.file = make_raw("ro.raw", 1 << 20);
    cfg.format = "raw";
    cfg.read_only = true;
    make_device(open_drive(cfg));
    EXPECT_TRUE(device_features() & B::k_f_ro);
    init_modern(k_base | B::k_f_ro);
    uint64_t st = request(B::k_t_out, 0, k_bufs, 512, false, 0x50000);
    kick();
    wait_used(1);
    EXPECT_EQ(byte_at(st), B::k_s_ioerr);
}

TEST_F(VirtioBlkTest, ResizeIsAConfigChangeInterrupt)
{
    Drive* d = raw_disk(1 << 20);
    make_device(d);
    auto capacity = [&] {
        uint64_t base = k_bar4 + VirtioPci::k_device_offset;
        return bus.mmio.read(base, 4) | bus.mmio.read(base + 4, 4) << 32;
    };
    // Before DRIVER_OK nothing is signalled.
    pci->config_changed();
    EXPECT_FALSE(bus.irq[11].level());
    init_modern(k_base);
    EXPECT_EQ(capacity(), 2048u);
    uint8_t generation = uint8_t(bus.mmio.read(k_bar4 + 0x15, 1));
    ASSERT_TRUE(loop->run_until_complete(d->backend()->root()->truncate(2 << 20, block::PreallocMode::Off, true)).ok());
    pci->config_changed();
    EXPECT_TRUE(bus.irq[11].level());
    EXPECT_EQ(bus.mmio.read(k_bar4 + VirtioPci::k_isr_offset, 1), 2u); // configuration change bit
    EXPECT_NE(uint8_t(bus.mmio.read(k_bar4 + 0x15, 1)), generation);
    EXPECT_EQ(capacity(), 4096u);
}

} // namespace
} // namespace kiln::hw::test
