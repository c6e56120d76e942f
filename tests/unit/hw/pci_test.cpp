#include "hw/pci/pci_bar.h"
#include "hw/pci/pci_host.h"
#include "hw/pci/piix3.h"
#include "hw/misc/system_ports.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct PciFixture : ::testing::Test {
    PciFixture()
    {
        h.map_pio(0xcf8, 4, host.address_region());
        h.map_pio(0xcfc, 4, host.data_region());
        EXPECT_TRUE(host.attach(0, 0, bridge).ok());
        EXPECT_TRUE(host.attach(1, 0, piix3).ok());
    }
    uint32_t cfg_read(unsigned dev, unsigned fn, unsigned off, unsigned size = 4)
    {
        h.outl(0xcf8, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xfc));
        return uint32_t(h.pio.read(0xcfc + (off & 3), size));
    }
    void cfg_write(unsigned dev, unsigned fn, unsigned off, unsigned size, uint32_t v)
    {
        h.outl(0xcf8, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xfc));
        h.pio.write(0xcfc + (off & 3), size, v);
    }
    DeviceHarness h;
    IrqRecorder isa;
    int cf9_resets = 0;
    PciHost host{nullptr};
    I440fxHostBridge bridge;
    Piix3IsaBridge piix3{isa};
};

TEST_F(PciFixture, IdsThroughMechanism1)
{
    EXPECT_EQ(cfg_read(0, 0, 0), 0x12378086u);
    EXPECT_EQ(cfg_read(1, 0, 0), 0x70008086u);
    EXPECT_EQ(cfg_read(1, 0, 0x0a, 2), 0x0601u); // ISA bridge class
    EXPECT_EQ(cfg_read(1, 0, 0x0e, 1), 0x80u);   // multi-function
    EXPECT_EQ(cfg_read(5, 0, 0), 0xffffffffu);
    h.outl(0xcf8, 0x12345678);
    EXPECT_EQ(h.inl(0xcf8), 0x12345678u & 0x80fffffcu);
}

TEST_F(PciFixture, DisabledAddressReadsAllOnes)
{
    h.outl(0xcf8, 0x00000000);
    EXPECT_EQ(h.inl(0xcfc), 0xffffffffu);
}

TEST_F(PciFixture, ReadOnlyFieldsIgnoreWrites)
{
    cfg_write(0, 0, 0, 4, 0);
    EXPECT_EQ(cfg_read(0, 0, 0), 0x12378086u);
    cfg_write(0, 0, 0x04, 2, 0xffff);
    EXPECT_EQ(cfg_read(0, 0, 0x04, 2), 0x0507u);
}

TEST_F(PciFixture, AttachTwiceIsRefused)
{
    I440fxHostBridge other;
    auto r = host.attach(0, 0, other);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "PCI: slot 0 function 0 not available for i440FX, in use by i440FX");
}

TEST_F(PciFixture, PirqRoutingDrivesIsaIrq)
{
    EXPECT_EQ(cfg_read(1, 0, 0x60), 0x80808080u);
    piix3.set_pirq(0, true);
    EXPECT_FALSE(isa.level(11)); // not routed yet
    cfg_write(1, 0, 0x60, 1, 11);
    EXPECT_TRUE(isa.level(11));
    cfg_write(1, 0, 0x60, 1, 0x80);
    EXPECT_FALSE(isa.level(11));
    EXPECT_EQ(Piix3IsaBridge::pirq_for(3, 1), 3u);
    // With an APIC sink, PIRQ n is also GSI 16 + n, routed or not.
    IrqRecorder apic;
    Piix3IsaBridge with_apic(isa, &apic);
    with_apic.set_pirq(2, true);
    EXPECT_TRUE(apic.level(18));
    with_apic.set_pirq(2, false);
    EXPECT_FALSE(apic.level(18));
    EXPECT_EQ(Piix3IsaBridge::pirq_for(3, 2), 0u);
}

TEST_F(PciFixture, Cf9ByteGoesToResetControl)
{
    int resets = 0;
    ResetControl rc([&] { resets++; });
    PciHost host2(&rc);
    DeviceHarness h2;
    h2.map_pio(0xcf8, 4, host2.address_region());
    h2.outb(0xcf9, 0x06);
    EXPECT_EQ(resets, 1);
    h2.outl(0xcf8, 0x80000000);
    EXPECT_EQ(resets, 1);
}

// A function with an I/O, a 32-bit and a 64-bit memory BAR whose regions
// record the offsets they see.
class BarDevice final : public PciDevice {
public:
    BarDevice(IoBus& pio, IoBus& mmio)
        : PciDevice(0x1af4, 0x1234, 0xff000000, 0)
        , m_bars(m_config, m_wmask)
    {
        set_writable(0x04, 2, 0xff); // command
        m_bars.define(0, PciBarKind::Io, 16, m_io, pio, "test-io");
        m_bars.define(1, PciBarKind::Mem32, 4096, m_mem, mmio, "test-mem32");
        m_bars.define(2, PciBarKind::Mem64, 16384, m_mem64, mmio, "test-mem64");
    }
    std::string name() const override { return "bar-device"; }
    void config_write(unsigned offset, unsigned size, uint32_t value) override
    {
        PciDevice::config_write(offset, size, value);
        m_bars.update();
    }
    PciBars& bars() { return m_bars; }
    uint64_t last_io_offset = ~0ull, last_mem_offset = ~0ull;

private:
    FnRegion m_io{[this](uint64_t o, unsigned) { return last_io_offset = o, 0x5a; }, nullptr};
    FnRegion m_mem{[this](uint64_t o, unsigned) { return last_mem_offset = o, 0xa5; }, nullptr};
    FnRegion m_mem64{[](uint64_t, unsigned) { return 0x64; }, nullptr};
    PciBars m_bars;
};

TEST_F(PciFixture, BarSizingAndDecodingFollowTheCommandRegister)
{
    BarDevice dev(h.pio, h.mmio);
    ASSERT_TRUE(host.attach(3, 0, dev).ok());
    // Sizing: all ones reads back the size mask and the type bits.
    for (unsigned bar = 0; bar < 4; bar++)
        cfg_write(3, 0, 0x10 + 4 * bar, 4, 0xffffffff);
    EXPECT_EQ(cfg_read(3, 0, 0x10), 0xfffffff1u);
    EXPECT_EQ(cfg_read(3, 0, 0x14), 0xfffff000u);
    EXPECT_EQ(cfg_read(3, 0, 0x18), 0xffffc004u);
    EXPECT_EQ(cfg_read(3, 0, 0x1c), 0xffffffffu);
    // Placed, but decoding is off until the command register says so.
    cfg_write(3, 0, 0x10, 4, 0xc000);
    cfg_write(3, 0, 0x14, 4, 0xfeb00000);
    cfg_write(3, 0, 0x18, 4, 0x0);
    cfg_write(3, 0, 0x1c, 4, 0x8);
    EXPECT_EQ(h.inb(0xc004), 0xff);
    EXPECT_EQ(dev.bars().mapped_address(0), 0u);
    cfg_write(3, 0, 0x04, 2, 0x1); // I/O space
    EXPECT_EQ(h.inb(0xc004), 0x5a);
    EXPECT_EQ(dev.last_io_offset, 4u); // the device sees offsets
    EXPECT_EQ(dev.bars().mapped_address(1), 0u);
    cfg_write(3, 0, 0x04, 2, 0x3); // and memory space
    EXPECT_EQ(h.readl(0xfeb00010) & 0xff, 0xa5u);
    EXPECT_EQ(dev.last_mem_offset, 0x10u);
    EXPECT_EQ(dev.bars().mapped_address(2), 0x800000000u);
    EXPECT_EQ(h.mmio.read(0x800000008, 1), 0x64u);
    // Moving a BAR moves the decode; turning decoding off removes it.
    cfg_write(3, 0, 0x10, 4, 0xd001);
    EXPECT_EQ(h.inb(0xc004), 0xff);
    EXPECT_EQ(h.inb(0xd000), 0x5a);
    cfg_write(3, 0, 0x04, 2, 0x0);
    EXPECT_EQ(h.inb(0xd000), 0xff);
    EXPECT_EQ(dev.bars().mapped_address(1), 0u);
}

TEST_F(PciFixture, OverlappingBarDecodesNothing)
{
    BarDevice dev(h.pio, h.mmio);
    ASSERT_TRUE(host.attach(3, 0, dev).ok());
    // 0xCF8 belongs to the host bridge: an I/O BAR there is refused.
    cfg_write(3, 0, 0x10, 4, 0xcf0);
    cfg_write(3, 0, 0x04, 2, 0x1);
    EXPECT_EQ(dev.bars().mapped_address(0), 0u);
    EXPECT_EQ(h.inl(0xcf8) & 0x80000000u, 0x80000000u); // the host still answers
    cfg_write(3, 0, 0x10, 4, 0xc000);
    EXPECT_EQ(dev.bars().mapped_address(0), 0xc000u);
}

} // namespace
} // namespace kiln::hw::test
