#include "hw/timer/rtc_mc146818.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

constexpr int64_t k_base = 1700000000; // 2023-11-14 22:13:20 UTC, a Tuesday

struct RtcFixture : ::testing::Test {
    RtcFixture() { h.map_pio(0x70, 2, rtc); }
    uint8_t cmos(uint8_t i)
    {
        h.outb(0x70, i);
        return h.inb(0x71);
    }
    void set(uint8_t i, uint8_t v)
    {
        h.outb(0x70, i);
        h.outb(0x71, v);
    }
    DeviceHarness h;
    RtcMc146818 rtc{h.clock, h.irq[8], k_base};
};

TEST_F(RtcFixture, ReadsBcdTimeAndAdvancesWithVirtualClock)
{
    EXPECT_EQ(cmos(0x00), 0x20); // seconds
    EXPECT_EQ(cmos(0x02), 0x13);
    EXPECT_EQ(cmos(0x04), 0x22);
    EXPECT_EQ(cmos(0x06), 0x03); // Tuesday = 3
    EXPECT_EQ(cmos(0x07), 0x14);
    EXPECT_EQ(cmos(0x08), 0x11);
    EXPECT_EQ(cmos(0x09), 0x23);
    EXPECT_EQ(cmos(0x32), 0x20);
    h.step_ns(45ull * 1000000000ull);
    EXPECT_EQ(cmos(0x00), 0x05);
    EXPECT_EQ(cmos(0x02), 0x14);
}

TEST_F(RtcFixture, BinaryAnd12HourModes)
{
    set(0x0b, 0x04); // binary, 12-hour
    EXPECT_EQ(cmos(0x00), 20);
    EXPECT_EQ(cmos(0x04), 0x80 | 10); // 10 PM
}

TEST_F(RtcFixture, SetModeFreezesAndWritesTime)
{
    set(0x0b, 0x82); // SET, 24h, BCD
    set(0x04, 0x05);
    h.step_ns(10ull * 1000000000ull);
    EXPECT_EQ(cmos(0x04), 0x05);
    EXPECT_EQ(cmos(0x00), 0x20); // frozen
    set(0x0b, 0x02);
    h.step_ns(1000000000ull);
    EXPECT_EQ(cmos(0x04), 0x05);
    EXPECT_EQ(cmos(0x00), 0x21);
}

TEST_F(RtcFixture, PeriodicInterruptUntilRegCRead)
{
    set(0x0a, 0x26); // 1024 Hz
    set(0x0b, 0x42); // PIE
    h.step_ns(1000000); // ~1 ms
    EXPECT_TRUE(h.irq[8].level());
    uint8_t c = cmos(0x0c);
    EXPECT_EQ(c & 0xc0, 0xc0); // IRQF + PF
    EXPECT_FALSE(h.irq[8].level());
    h.step_ns(10 * 976563);
    EXPECT_EQ(h.irq[8].rising_edges(), 2u); // no new edge until C was read
}

TEST_F(RtcFixture, UpdateEndedInterruptEverySecond)
{
    set(0x0b, 0x12); // UIE
    h.step_ns(1000000000ull);
    EXPECT_TRUE(h.irq[8].level());
    EXPECT_EQ(cmos(0x0c) & 0x90, 0x90);
}

TEST_F(RtcFixture, UipBitBeforeSecondBoundary)
{
    h.step_ns(1000000000ull - 100000);
    EXPECT_TRUE(cmos(0x0a) & 0x80);
    h.step_ns(200000);
    EXPECT_FALSE(cmos(0x0a) & 0x80);
}

TEST_F(RtcFixture, MemorySizeBytesAndChecksum)
{
    rtc.set_memory_size(128ull << 20, 0);
    EXPECT_EQ(cmos(0x15) | (cmos(0x16) << 8), 640);
    EXPECT_EQ(cmos(0x17) | (cmos(0x18) << 8), 0xfc00); // capped at 63 MiB
    EXPECT_EQ(cmos(0x34) | (cmos(0x35) << 8), (112u << 20) >> 16);
    rtc.set_memory_size(3ull << 30, 1ull << 30);
    EXPECT_EQ(cmos(0x5b) | (cmos(0x5c) << 8) | (cmos(0x5d) << 16), (1u << 30) >> 16);
    unsigned sum = 0;
    for (unsigned i = 0x10; i <= 0x2d; i++)
        sum += cmos(uint8_t(i));
    EXPECT_EQ(sum, (cmos(0x2e) << 8) | cmos(0x2f));
    EXPECT_EQ(cmos(0x0d), 0x80);
}

TEST_F(RtcFixture, AlarmInterruptAtMatchingTime)
{
    // Base time 22:13:20; alarm at 22:13:23 (BCD), AIE on.
    set(0x01, 0x23);
    set(0x03, 0x13);
    set(0x05, 0x22);
    set(0x0b, cmos(0x0b) | 0x20);
    h.step_ns(2ull * 1000000000ull);
    EXPECT_FALSE(h.irq[8].level());
    h.step_ns(1ull * 1000000000ull);
    EXPECT_TRUE(h.irq[8].level());
    EXPECT_EQ(cmos(0x0c) & 0xa0, 0xa0); // IRQF | AF, cleared by the read
    EXPECT_FALSE(h.irq[8].level());
    // "Don't care" bytes (0xc0-0xff): an alarm every second.
    set(0x01, 0xc0);
    set(0x03, 0xc0);
    set(0x05, 0xc0);
    h.step_ns(1ull * 1000000000ull);
    EXPECT_TRUE(h.irq[8].level());
}

TEST_F(RtcFixture, StateRoundTrip)
{
    set(0x0b, 0x06);
    set(0x40, 0x5a);
    IrqLine irq;
    RtcMc146818 copy(h.clock, irq, 0);
    state_round_trip(rtc, copy);
    EXPECT_EQ(copy.cmos(0x40), 0x5a);
    EXPECT_EQ(copy.guest_time_s(), rtc.guest_time_s());
}

} // namespace
} // namespace kiln::hw::test
