#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct Recorder final : IoRegion {
    uint64_t read(uint64_t off, unsigned size) override
    {
        reads.push_back({off, size});
        return 0x1100 + off;
    }
    void write(uint64_t off, unsigned size, uint64_t v) override { writes.push_back({off, v}); }
    std::vector<std::pair<uint64_t, uint64_t>> reads, writes;
};

TEST(IoBus, DeviceSeesOffsetsNotAddresses)
{
    IoBus bus("pio", 0x10000);
    Recorder r;
    auto m = bus.map(0x3f8, 8, r, "serial");
    ASSERT_TRUE(m.ok());
    bus.write(0x3fb, 1, 0x83);
    ASSERT_EQ(r.writes.size(), 1u);
    EXPECT_EQ(r.writes[0].first, 3u);
    EXPECT_EQ(bus.read(0x3f9, 1), 0x01u); // 0x1101 masked to one byte
}

TEST(IoBus, RejectsOverlapsWithClearError)
{
    IoBus bus("pio", 0x10000);
    Recorder a, b;
    auto m1 = bus.map(0x60, 5, a, "i8042");
    ASSERT_TRUE(m1.ok());
    auto m2 = bus.map(0x61, 1, b, "port61");
    ASSERT_FALSE(m2.ok());
    EXPECT_EQ(m2.error().message(), "pio: region 'port61' at 0x61-0x61 overlaps 'i8042' at 0x60-0x64");
    auto m3 = bus.map(0x5e, 4, b, "low");
    ASSERT_FALSE(m3.ok());
    EXPECT_FALSE(bus.map(0xffff, 2, b, "edge").ok());
    EXPECT_TRUE(bus.map(0x65, 1, b, "next").ok());
}

TEST(IoBus, MappingIsRemovedWhenHandleDies)
{
    IoBus bus("pio", 0x10000);
    Recorder r;
    {
        auto m = bus.map(0x80, 1, r, "port80");
        ASSERT_TRUE(m.ok());
        EXPECT_EQ(bus.mapping_count(), 1u);
    }
    EXPECT_EQ(bus.mapping_count(), 0u);
    EXPECT_EQ(bus.read(0x80, 1), 0xffu);
    EXPECT_TRUE(bus.map(0x80, 1, r, "again").ok());
}

TEST(IoBus, UnclaimedReadsAllOnesAndStraddlesSplit)
{
    IoBus bus("mmio", 1ull << 40);
    Recorder r;
    auto m = bus.map(0x1000, 2, r, "two");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(bus.read(0x5000, 4), 0xffffffffu);
    // A 4-byte read at 0x1000 covers 2 device bytes and 2 unclaimed ones.
    uint64_t v = bus.read(0x1000, 4);
    EXPECT_EQ(v, 0xffff0100u);
    for (auto& [off, size] : r.reads)
        EXPECT_LT(off, 2u);
}

TEST(VirtualClock, ManualStepFiresTimersAtTheirDeadlines)
{
    VirtualClock clock(ClockMode::Manual);
    std::vector<uint64_t> fired;
    VirtualTimer a(clock, [&] { fired.push_back(clock.now_ns()); });
    VirtualTimer b(clock, [&] { fired.push_back(clock.now_ns()); });
    a.arm_at(300);
    b.arm_at(100);
    clock.step(250);
    ASSERT_EQ(fired.size(), 1u);
    EXPECT_EQ(fired[0], 100u);
    EXPECT_EQ(clock.now_ns(), 250u);
    clock.step(100);
    ASSERT_EQ(fired.size(), 2u);
    EXPECT_EQ(fired[1], 300u);
}

TEST(VirtualClock, CancelAndDestroyDisarm)
{
    VirtualClock clock(ClockMode::Manual);
    int n = 0;
    {
        VirtualTimer t(clock, [&] { n++; });
        t.arm_in(10);
    }
    VirtualTimer u(clock, [&] { n++; });
    u.arm_in(10);
    u.cancel();
    clock.step(100);
    EXPECT_EQ(n, 0);
    EXPECT_EQ(clock.next_deadline_ns(), UINT64_MAX);
}

TEST(VirtualClock, HostClockStopsWhilePaused)
{
    VirtualClock clock(ClockMode::Host);
    clock.pause();
    uint64_t t = clock.now_ns();
    EXPECT_EQ(clock.now_ns(), t);
    clock.set_now_ns(5000000000ull);
    EXPECT_EQ(clock.now_ns(), 5000000000ull);
    clock.resume();
    EXPECT_GE(clock.now_ns(), 5000000000ull);
}

TEST(IrqLine, ForwardsOnlyChangesToEveryTarget)
{
    IrqLine line;
    IrqRecorder a, b;
    line.connect(a, 3);
    line.connect(b, 7);
    line.raise();
    line.raise();
    line.lower();
    EXPECT_EQ(a.events.size(), 2u);
    EXPECT_EQ(b.events.size(), 2u);
    EXPECT_FALSE(b.level(7));
    line.pulse();
    EXPECT_EQ(line.rising_edges(), 2u);
}

TEST(StateReader, BoundsChecked)
{
    StateWriter w;
    w.u32(0x12345678);
    w.boolean(true);
    StateReader r(w.data(), "dev");
    EXPECT_EQ(r.u32().value(), 0x12345678u);
    EXPECT_TRUE(r.boolean().value());
    auto past = r.u8();
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.error().message(), "state section 'dev' is truncated");
    uint8_t bad[] = {7};
    StateReader r2(bad, "dev");
    EXPECT_FALSE(r2.boolean().ok());
}

} // namespace
} // namespace kiln::hw::test
