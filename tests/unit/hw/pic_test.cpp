#include "hw/intc/pic_8259.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

// The sequence Linux's init_8259A and every BIOS use.
struct PicFixture : ::testing::Test {
    PicFixture()
    {
        h.map_pio(0x20, 2, pic.master_region());
        h.map_pio(0xa0, 2, pic.slave_region());
        h.map_pio(0x4d0, 2, pic.elcr_region());
        for (unsigned i = 0; i < 16; i++)
            h.irq[i].connect(pic, i);
        h.outb(0x20, 0x11);
        h.outb(0x21, 0x20); // master vectors 0x20..
        h.outb(0x21, 0x04);
        h.outb(0x21, 0x01);
        h.outb(0xa0, 0x11);
        h.outb(0xa1, 0x28); // slave vectors 0x28..
        h.outb(0xa1, 0x02);
        h.outb(0xa1, 0x01);
        h.outb(0x21, 0x00);
        h.outb(0xa1, 0x00);
    }
    DeviceHarness h;
    bool out = false;
    PicPair pic{[this](bool l) { out = l; }};
};

TEST_F(PicFixture, EdgeIrqDeliversVectorAndNeedsEoi)
{
    h.irq[4].raise();
    EXPECT_TRUE(out);
    EXPECT_EQ(pic.acknowledge(), 0x24);
    EXPECT_FALSE(out);
    h.outb(0x20, 0x0b); // OCW3: read ISR
    EXPECT_EQ(h.inb(0x20), 0x10);
    // A lower-priority IRQ waits while IRQ 4 is in service...
    h.irq[6].raise();
    EXPECT_FALSE(out);
    // ...a higher-priority one does not.
    h.irq[1].raise();
    EXPECT_TRUE(out);
    EXPECT_EQ(pic.acknowledge(), 0x21);
    h.outb(0x20, 0x20); // EOI for IRQ 1
    h.outb(0x20, 0x20); // EOI for IRQ 4
    EXPECT_TRUE(out);
    EXPECT_EQ(pic.acknowledge(), 0x26);
}

TEST_F(PicFixture, EdgeNeedsANewRisingEdge)
{
    h.irq[3].raise();
    EXPECT_EQ(pic.acknowledge(), 0x23);
    h.outb(0x20, 0x20);
    EXPECT_FALSE(out); // still high, but no new edge
    h.irq[3].lower();
    h.irq[3].raise();
    EXPECT_TRUE(out);
}

TEST_F(PicFixture, MaskedIrqIsHeldInIrr)
{
    h.outb(0x21, 0x10);
    h.irq[4].raise();
    EXPECT_FALSE(out);
    h.outb(0x20, 0x0a); // read IRR
    EXPECT_EQ(h.inb(0x20), 0x10);
    h.outb(0x21, 0x00);
    EXPECT_TRUE(out);
}

TEST_F(PicFixture, SlaveCascadesThroughIrq2)
{
    h.irq[12].raise();
    EXPECT_TRUE(out);
    EXPECT_EQ(pic.acknowledge(), 0x2c);
    h.outb(0xa0, 0x20);
    h.outb(0x20, 0x20);
    EXPECT_FALSE(out);
}

TEST_F(PicFixture, ElcrMakesIrqLevelTriggered)
{
    h.outb(0x4d1, 0x02); // IRQ 9 level
    EXPECT_EQ(h.inb(0x4d1), 0x02);
    h.outb(0x4d0, 0xff); // IRQ 0-2 cannot be level
    EXPECT_EQ(h.inb(0x4d0), 0xf8);
    h.irq[9].raise();
    EXPECT_EQ(pic.acknowledge(), 0x29);
    h.outb(0xa0, 0x20);
    h.outb(0x20, 0x20);
    EXPECT_TRUE(out); // level still asserted: requested again
    h.irq[9].lower();
    EXPECT_FALSE(out);
}

TEST_F(PicFixture, SpuriousWhenNothingPendingAndPollMode)
{
    EXPECT_EQ(pic.acknowledge(), 0x27);
    h.irq[5].raise();
    h.outb(0x20, 0x0c); // OCW3 poll
    EXPECT_EQ(h.inb(0x20), 0x85);
    EXPECT_FALSE(out);
}

TEST_F(PicFixture, AutoEoiAndSpecificEoi)
{
    h.outb(0x20, 0x11);
    h.outb(0x21, 0x08);
    h.outb(0x21, 0x04);
    h.outb(0x21, 0x03); // ICW4 with AEOI
    h.irq[0].raise();
    EXPECT_EQ(pic.acknowledge(), 0x08);
    h.outb(0x20, 0x0b);
    EXPECT_EQ(h.inb(0x20), 0x00);
}

TEST_F(PicFixture, StateRoundTrip)
{
    h.outb(0x4d1, 0x02);
    h.irq[4].raise();
    (void)pic.acknowledge();
    bool out2 = false;
    PicPair copy{[&](bool l) { out2 = l; }};
    state_round_trip(pic, copy);
    EXPECT_EQ(copy.chip(0).isr, 0x10);
    EXPECT_EQ(copy.chip(1).elcr, 0x02);
    EXPECT_EQ(copy.chip(0).irq_base, 0x20);
}

} // namespace
} // namespace kiln::hw::test
