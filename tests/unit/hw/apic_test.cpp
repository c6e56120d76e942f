#include "hw/intc/ioapic.h"
#include "hw/intc/local_apic.h"
#include "hw/intc/pic_8259.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

constexpr uint64_t k_apic = LocalApic::k_default_base;
constexpr uint64_t k_ioapic = IoApic::k_default_base;

struct ApicFixture : ::testing::Test {
    ApicFixture()
    {
        h.map_mmio(k_apic, 0x1000, lapic);
        h.map_mmio(k_ioapic, 0x1000, ioapic);
        lapic.set_eoi_handler([this](uint8_t v) { ioapic.eoi(v); });
        lapic.set_kick([this] { kicks++; });
        for (unsigned i = 0; i < 24; i++)
            h.irq[i].connect(ioapic, i);
        h.writel(k_apic + 0xf0, 0x1ff); // software enable, spurious 0xff
    }
    void redir(unsigned pin, uint64_t v)
    {
        h.writel(k_ioapic, 0x10 + 2 * pin);
        h.writel(k_ioapic + 0x10, uint32_t(v));
        h.writel(k_ioapic, 0x11 + 2 * pin);
        h.writel(k_ioapic + 0x10, uint32_t(v >> 32));
    }
    DeviceHarness h;
    bool pic_out = false;
    PicPair pic{[this](bool l) { lapic.set_lint(0, l); }};
    LocalApic lapic{h.clock, &pic};
    IoApic ioapic{lapic};
    int kicks = 0;
};

TEST_F(ApicFixture, VersionIdAndIoapicVersion)
{
    EXPECT_EQ(h.readl(k_apic + 0x30) & 0xff, 0x14u);
    EXPECT_EQ(h.readl(k_apic + 0x20), 0u);
    h.writel(k_ioapic, 1);
    EXPECT_EQ(h.readl(k_ioapic + 0x10), 0x00170011u);
}

TEST_F(ApicFixture, IoapicEdgeDeliveryAndEoi)
{
    redir(4, 0x31); // vector 0x31, fixed, edge, dest 0
    h.irq[4].raise();
    EXPECT_TRUE(lapic.interrupt_pending());
    EXPECT_GT(kicks, 0);
    EXPECT_EQ(lapic.acknowledge(), 0x31);
    EXPECT_FALSE(lapic.interrupt_pending());
    EXPECT_EQ(h.readl(k_apic + 0x100 + 0x10), 1u << (0x31 - 32)); // ISR bit
    h.writel(k_apic + 0xb0, 0);
    EXPECT_EQ(h.readl(k_apic + 0x110), 0u);
}

TEST_F(ApicFixture, LogicalDestinationAsLinuxFlatModeProgramsIt)
{
    h.writel(k_apic + 0xe0, 0xffffffff); // DFR flat
    h.writel(k_apic + 0xd0, 0x01000000); // LDR: logical id bit 0
    redir(2, (1ull << 56) | 0x800 | 0x30);
    h.writel(k_ioapic, 0x10 + 4);
    EXPECT_EQ(h.readl(k_ioapic + 0x10), 0x830u); // dest mode bit kept
    h.irq[2].raise();
    EXPECT_EQ(lapic.acknowledge(), 0x30);
    redir(3, (2ull << 56) | 0x800 | 0x31); // another logical CPU: not us
    h.irq[3].raise();
    EXPECT_FALSE(lapic.interrupt_pending());
}

TEST_F(ApicFixture, MaskedPinDoesNotDeliver)
{
    redir(5, 0x10000 | 0x35);
    h.irq[5].raise();
    EXPECT_FALSE(lapic.interrupt_pending());
}

TEST_F(ApicFixture, LevelPinRemoteIrrUntilEoi)
{
    redir(9, 0x8000 | 0x39); // level
    h.irq[9].raise();
    EXPECT_EQ(lapic.acknowledge(), 0x39);
    h.writel(k_ioapic, 0x10 + 18);
    EXPECT_TRUE(h.readl(k_ioapic + 0x10) & (1u << 14)); // remote IRR
    h.writel(k_apic + 0xb0, 0);                         // EOI: still asserted -> again
    EXPECT_TRUE(lapic.interrupt_pending());
    EXPECT_EQ(lapic.acknowledge(), 0x39);
    h.irq[9].lower();
    h.writel(k_apic + 0xb0, 0);
    EXPECT_FALSE(lapic.interrupt_pending());
    h.writel(k_ioapic, 0x10 + 18);
    EXPECT_FALSE(h.readl(k_ioapic + 0x10) & (1u << 14));
}

TEST_F(ApicFixture, TaskPriorityBlocksLowerClasses)
{
    redir(4, 0x41);
    h.writel(k_apic + 0x80, 0x50);
    h.irq[4].raise();
    EXPECT_FALSE(lapic.interrupt_pending());
    h.writel(k_apic + 0x80, 0x30);
    EXPECT_TRUE(lapic.interrupt_pending());
    EXPECT_EQ(h.readl(k_apic + 0xa0), 0x30u); // PPR
}

TEST_F(ApicFixture, ExtIntPassesThePic)
{
    pic.chip(0).irq_base = 0x20; // as if initialised
    pic.set_irq(1, true);
    EXPECT_TRUE(lapic.interrupt_pending());
    EXPECT_EQ(lapic.acknowledge(), 0x21);
    // Masking LINT0 cuts the PIC off.
    pic.set_irq(3, true);
    h.writel(k_apic + 0x350, 0x10700);
    EXPECT_FALSE(lapic.interrupt_pending());
}

TEST_F(ApicFixture, TimerOneShotAndPeriodic)
{
    h.writel(k_apic + 0x3e0, 0x3);        // divide by 16
    h.writel(k_apic + 0x320, 0x40);       // one-shot, vector 0x40
    h.writel(k_apic + 0x380, 1000);       // 16000 ns
    h.step_ns(8000);
    EXPECT_EQ(h.readl(k_apic + 0x390), 500u);
    EXPECT_FALSE(lapic.interrupt_pending());
    h.step_ns(8000);
    EXPECT_TRUE(lapic.interrupt_pending());
    EXPECT_EQ(lapic.acknowledge(), 0x40);
    h.writel(k_apic + 0xb0, 0);
    EXPECT_EQ(h.readl(k_apic + 0x390), 0u);

    h.writel(k_apic + 0x320, 0x20041);    // periodic, vector 0x41
    h.writel(k_apic + 0x380, 100);        // 1600 ns
    int n = 0;
    for (int i = 0; i < 5; i++) {
        h.step_ns(1600);
        if (lapic.interrupt_pending()) {
            EXPECT_EQ(lapic.acknowledge(), 0x41);
            h.writel(k_apic + 0xb0, 0);
            n++;
        }
    }
    EXPECT_EQ(n, 5);
}

TEST_F(ApicFixture, SelfIpiAndNmi)
{
    h.writel(k_apic + 0x300, 0x40000 | 0x50); // shorthand self, fixed
    EXPECT_EQ(lapic.acknowledge(), 0x50);
    lapic.set_lint(1, true); // LINT1 is NMI after reset
    EXPECT_TRUE(lapic.nmi_pending());
    lapic.acknowledge_nmi();
    EXPECT_FALSE(lapic.nmi_pending());
}

TEST_F(ApicFixture, StateRoundTrip)
{
    redir(4, 0x31);
    h.writel(k_apic + 0x80, 0x20);
    h.writel(k_apic + 0x320, 0x20042);
    h.writel(k_apic + 0x380, 1000);
    PicPair pic2{nullptr};
    LocalApic lapic2(h.clock, &pic2);
    IoApic ioapic2(lapic2);
    state_round_trip(lapic, lapic2);
    state_round_trip(ioapic, ioapic2);
    EXPECT_EQ(ioapic2.redirection(4), 0x31u);
    EXPECT_EQ(lapic2.read(0x80, 4), 0x20u);
    h.step_ns(32000);
    EXPECT_TRUE(lapic2.interrupt_pending());
}

} // namespace
} // namespace kiln::hw::test
