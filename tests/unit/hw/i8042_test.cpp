#include "hw/input/i8042.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct KbdFixture : ::testing::Test {
    KbdFixture() { h.map_pio(0x60, 5, kbc); }
    DeviceHarness h;
    int resets = 0;
    I8042 kbc{h.irq[1], h.irq[12], [this] { resets++; }};
};

TEST_F(KbdFixture, SelfTestAndCommandByte)
{
    h.outb(0x64, 0xaa);
    EXPECT_EQ(h.inb(0x64) & 0x01, 0x01);
    EXPECT_EQ(h.inb(0x60), 0x55);
    EXPECT_EQ(h.inb(0x64) & 0x01, 0x00);
    h.outb(0x64, 0x60);
    h.outb(0x60, 0x45);
    h.outb(0x64, 0x20);
    EXPECT_EQ(h.inb(0x60), 0x45);
}

TEST_F(KbdFixture, KeyboardResetRepliesAckAndBatWithIrq1)
{
    h.outb(0x60, 0xff);
    EXPECT_TRUE(h.irq[1].level());
    EXPECT_EQ(h.inb(0x60), 0xfa);
    EXPECT_EQ(h.inb(0x60), 0xaa);
    EXPECT_FALSE(h.irq[1].level());
}

// IRQ 1/12 are edge-triggered: every byte of a multi-byte reply needs a
// rising edge of its own, as Linux reads one byte per interrupt.
TEST_F(KbdFixture, EachReplyByteRaisesItsOwnEdge)
{
    h.outb(0x64, 0x60);
    h.outb(0x60, 0x07); // both interrupts on, no translation
    unsigned before = h.irq[1].rising_edges();
    h.outb(0x60, 0xf2); // GETID: ACK, 0xAB, 0x83
    EXPECT_EQ(h.irq[1].rising_edges(), before + 1);
    EXPECT_EQ(h.inb(0x60), 0xfa);
    EXPECT_EQ(h.irq[1].rising_edges(), before + 2);
    EXPECT_EQ(h.inb(0x60), 0xab);
    EXPECT_EQ(h.irq[1].rising_edges(), before + 3);
    EXPECT_EQ(h.inb(0x60), 0x83);
    EXPECT_EQ(h.irq[1].rising_edges(), before + 3);
    EXPECT_FALSE(h.irq[1].level());
    unsigned aux_before = h.irq[12].rising_edges();
    h.outb(0x64, 0xd4);
    h.outb(0x60, 0xff); // mouse reset: ACK, 0xAA, 0x00
    EXPECT_EQ(h.inb(0x60), 0xfa);
    EXPECT_EQ(h.inb(0x60), 0xaa);
    EXPECT_EQ(h.inb(0x60), 0x00);
    EXPECT_EQ(h.irq[12].rising_edges(), aux_before + 3);
}

// Command byte bit 6: set-2 codes reach the guest as set 1 (Linux's
// "AT Translated Set 2 keyboard"), and GETID says 0xAB 0x41.
TEST_F(KbdFixture, TranslationToSet1)
{
    h.outb(0x64, 0x60);
    h.outb(0x60, 0x45); // keyboard interrupt, translation on
    h.outb(0x60, 0xf2);
    EXPECT_EQ(h.inb(0x60), 0xfa);
    EXPECT_EQ(h.inb(0x60), 0xab);
    EXPECT_EQ(h.inb(0x60), 0x41);
    h.outb(0x60, 0xf4); // enable scanning
    EXPECT_EQ(h.inb(0x60), 0xfa);
    const uint8_t a_press[] = { 0x1c }, a_release[] = { 0xf0, 0x1c };
    const uint8_t up_press[] = { 0xe0, 0x75 }, up_release[] = { 0xe0, 0xf0, 0x75 };
    const uint8_t f7[] = { 0x83 };
    kbc.key_event(a_press);
    kbc.key_event(a_release);
    kbc.key_event(up_press);
    kbc.key_event(up_release);
    kbc.key_event(f7);
    for (uint8_t want : { 0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8, 0x41 })
        EXPECT_EQ(h.inb(0x60), want);
    // Without translation the set-2 bytes pass as they are.
    h.outb(0x64, 0x60);
    h.outb(0x60, 0x05);
    kbc.key_event(a_release);
    EXPECT_EQ(h.inb(0x60), 0xf0);
    EXPECT_EQ(h.inb(0x60), 0x1c);
}

TEST_F(KbdFixture, MouseBytesGoToIrq12WithAuxBit)
{
    h.outb(0x64, 0x60);
    h.outb(0x60, 0x47); // both interrupts on
    h.outb(0x64, 0xd4);
    h.outb(0x60, 0xf2);
    EXPECT_TRUE(h.irq[12].level());
    EXPECT_FALSE(h.irq[1].level());
    EXPECT_EQ(h.inb(0x64) & 0x21, 0x21);
    EXPECT_EQ(h.inb(0x60), 0xfa);
    EXPECT_EQ(h.inb(0x60), 0x00);
}

TEST_F(KbdFixture, PulseResetLine)
{
    h.outb(0x64, 0xfe);
    EXPECT_EQ(resets, 1);
    h.outb(0x64, 0xff); // pulsing no line
    EXPECT_EQ(resets, 1);
    h.outb(0x64, 0xd1);
    h.outb(0x60, 0x02); // output port with reset bit low
    EXPECT_EQ(resets, 2);
}

TEST_F(KbdFixture, OutputPortA20AndResetLine)
{
    h.outb(0x64, 0xd0);
    EXPECT_EQ(h.inb(0x60), 0x03); // reset line released, A20 on
    h.outb(0x64, 0xd1);
    h.outb(0x60, 0x01); // A20 off, reset line still high
    EXPECT_EQ(resets, 0);
    h.outb(0x64, 0xd0);
    EXPECT_EQ(h.inb(0x60), 0x01);
    h.outb(0x64, 0xd1);
    h.outb(0x60, 0x02); // bit 0 low: the CPU's reset line
    EXPECT_EQ(resets, 1);
}

TEST_F(KbdFixture, DisabledKeyboardDropsKeysAndAuxEnableBit)
{
    h.outb(0x60, 0xf4); // enable scanning
    EXPECT_EQ(h.inb(0x60), 0xfa);
    h.outb(0x64, 0xad); // disable the keyboard interface
    const uint8_t key[] = {0x1c};
    kbc.key_event(key);
    EXPECT_EQ(h.inb(0x64) & 0x01, 0x00);
    h.outb(0x64, 0xae);
    kbc.key_event(key);
    EXPECT_EQ(h.inb(0x64) & 0x01, 0x01);
    EXPECT_EQ(h.inb(0x60), 0x1e); // translated: the reset command byte has bit 6 set
    h.outb(0x64, 0xa7); // aux off: command byte bit 5
    h.outb(0x64, 0x20);
    EXPECT_EQ(h.inb(0x60) & 0x20, 0x20);
    h.outb(0x64, 0xa8);
    h.outb(0x64, 0x20);
    EXPECT_EQ(h.inb(0x60) & 0x20, 0x00);
    // Unknown keyboard command: RESEND.
    h.outb(0x60, 0x99);
    EXPECT_EQ(h.inb(0x60), 0xfe);
}

TEST_F(KbdFixture, StateRoundTrip)
{
    h.outb(0x60, 0xf2);
    IrqLine a, b;
    I8042 copy(a, b, nullptr);
    state_round_trip(kbc, copy);
    EXPECT_EQ(copy.read(0, 1), 0xfau);
    EXPECT_EQ(copy.read(0, 1), 0xabu);
}

} // namespace
} // namespace kiln::hw::test
