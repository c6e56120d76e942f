#include "hw/misc/system_ports.h"
#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

TEST(Port92, FastA20ReadsBackAndResetOnRisingBit0)
{
    DeviceHarness h;
    int resets = 0;
    Port92 p92([&] { resets++; });
    h.map_pio(0x92, 1, p92);
    EXPECT_EQ(h.inb(0x92), 0x02); // A20 on after reset
    EXPECT_TRUE(p92.a20());
    h.outb(0x92, 0x00);
    EXPECT_FALSE(p92.a20());
    EXPECT_EQ(h.inb(0x92), 0x00);
    EXPECT_EQ(resets, 0);
    h.outb(0x92, 0x03); // INIT: bit 0 0->1
    EXPECT_EQ(resets, 1);
    EXPECT_EQ(h.inb(0x92), 0x02); // bit 0 self-clears, A20 kept
    p92.reset();
    EXPECT_EQ(h.inb(0x92), 0x02);
    Port92 copy(nullptr);
    h.outb(0x92, 0x00);
    state_round_trip(p92, copy);
    EXPECT_FALSE(copy.a20());
}

TEST(DebugPort80, KeepsTheLastPostCode)
{
    DeviceHarness h;
    DebugPort80 p80;
    h.map_pio(0x80, 1, p80);
    h.outb(0x80, 0x55);
    EXPECT_EQ(p80.last(), 0x55);
    EXPECT_EQ(h.inb(0x80), 0x55);
}

TEST(ResetControl, Cf9ResetsOnlyOnByteWritesWithRstCpu)
{
    DeviceHarness h;
    int resets = 0;
    ResetControl cf9([&] { resets++; });
    h.map_pio(0xcf9, 1, cf9);
    h.outb(0xcf9, 0x02); // SYS_RST alone selects, does not reset
    EXPECT_EQ(resets, 0);
    EXPECT_EQ(h.inb(0xcf9), 0x02);
    h.outb(0xcf9, 0x06);
    EXPECT_EQ(resets, 1);
}

} // namespace
} // namespace kiln::hw::test
