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

} // namespace
} // namespace kiln::hw::test
