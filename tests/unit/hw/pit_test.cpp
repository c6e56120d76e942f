#include "hw/timer/pit_8254.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

constexpr uint64_t k_tick_ns = 838; // ~1/1.193182 MHz

struct PitFixture : ::testing::Test {
    PitFixture()
    {
        h.map_pio(0x40, 4, pit);
        h.map_pio(0x61, 1, pit.port61_region());
    }
    DeviceHarness h;
    Pit8254 pit{h.clock, h.irq[0]};
};

TEST_F(PitFixture, Mode2PeriodicRaisesIrq0AtHz)
{
    // Linux: 100 Hz... use 1000 ticks (~838 us) for a short test.
    h.outb(0x43, 0x34); // ch0, lsb/msb, mode 2
    h.outb(0x40, 1000 & 0xff);
    h.outb(0x40, 1000 >> 8);
    unsigned before = h.irq[0].rising_edges();
    h.step_ns(10 * 1000 * k_tick_ns + 5000);
    EXPECT_EQ(h.irq[0].rising_edges() - before, 10u);
}

TEST_F(PitFixture, LateTimerStillGivesAnEdgePerPoll)
{
    // The board runs timers when the vCPU polls; a poll long after the
    // falling edge must still produce a rising edge, not a flat line.
    VirtualClock clock(ClockMode::Manual);
    IrqLine irq;
    Pit8254 pit2(clock, irq);
    pit2.write(3, 1, 0x34);
    pit2.write(0, 1, 1000 & 0xff);
    pit2.write(0, 1, 1000 >> 8);
    unsigned before = irq.rising_edges();
    for (int poll = 1; poll <= 5; poll++) {
        clock.set_now_ns(uint64_t(poll) * 1000 * k_tick_ns + 50 * k_tick_ns); // just past each period
        clock.run_due();
        EXPECT_EQ(irq.rising_edges() - before, unsigned(poll));
    }
}

TEST_F(PitFixture, Mode0OneShotRaisesOnceAndStaysHigh)
{
    h.outb(0x43, 0x30);
    h.outb(0x40, 100);
    h.outb(0x40, 0);
    EXPECT_FALSE(h.irq[0].level());
    h.step_ns(99 * k_tick_ns);
    EXPECT_FALSE(h.irq[0].level());
    h.step_ns(3 * k_tick_ns);
    EXPECT_TRUE(h.irq[0].level());
    h.step_ns(1000000);
    EXPECT_TRUE(h.irq[0].level());
    EXPECT_EQ(h.irq[0].rising_edges(), 1u);
    // A new control word drops the output.
    h.outb(0x43, 0x30);
    EXPECT_FALSE(h.irq[0].level());
}

TEST_F(PitFixture, LatchedCountReadsLsbThenMsb)
{
    h.outb(0x43, 0x34);
    h.outb(0x40, 0x00);
    h.outb(0x40, 0x10); // 0x1000
    h.step_ns(0x100 * k_tick_ns + 100);
    h.outb(0x43, 0x00); // latch ch0
    h.step_ns(50 * k_tick_ns); // counting on does not change the latch
    uint16_t v = h.inb(0x40);
    v |= uint16_t(h.inb(0x40) << 8);
    EXPECT_EQ(v, 0x1000 - 0x100);
}

TEST_F(PitFixture, ReadBackStatus)
{
    h.outb(0x43, 0xb6); // ch2, lsb/msb, mode 3
    h.outb(0x43, 0xe8); // read-back: status only, ch2
    uint8_t st = h.inb(0x42);
    EXPECT_EQ(st & 0x3f, 0x36); // rw=3, mode 3, binary
    EXPECT_TRUE(st & 0x40);     // null count: no count written yet
}

TEST_F(PitFixture, Channel2GateAndOutputOnPort61)
{
    // Linux's PIT calibration: gate on, mode 0 on channel 2, poll bit 5.
    h.outb(0x61, (h.inb(0x61) & ~0x02) | 0x01);
    h.outb(0x43, 0xb0);
    h.outb(0x42, 0xff);
    h.outb(0x42, 0x00); // 255 ticks
    EXPECT_FALSE(h.inb(0x61) & 0x20);
    h.step_ns(256 * k_tick_ns);
    EXPECT_TRUE(h.inb(0x61) & 0x20);
    EXPECT_EQ(h.inb(0x61) & 0x03, 0x01);
}

TEST_F(PitFixture, RefreshBitToggles)
{
    uint8_t a = h.inb(0x61) & 0x10;
    h.step_ns(15085);
    uint8_t b = h.inb(0x61) & 0x10;
    EXPECT_NE(a, b);
}

TEST_F(PitFixture, StateRoundTripKeepsCounting)
{
    h.outb(0x43, 0x34);
    h.outb(0x40, 0xe8);
    h.outb(0x40, 0x03);
    h.step_ns(100 * k_tick_ns);
    IrqLine irq;
    Pit8254 copy(h.clock, irq);
    state_round_trip(pit, copy);
    EXPECT_EQ(copy.current_count(0), pit.current_count(0));
    unsigned e = irq.rising_edges();
    h.step_ns(1000 * k_tick_ns + 1000);
    EXPECT_EQ(irq.rising_edges() - e, 1u);
}

} // namespace
} // namespace kiln::hw::test
