// A command that runs the event loop nested (as block operations do) must
// not let other input run commands in the middle of it: input that arrives
// meanwhile waits and runs, in order, once the command has returned.
#include <gtest/gtest.h>

#include "monitor/monitor.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class NestedMachine : public testing::FakeMachine {
public:
    explicit NestedMachine(EventLoop& loop)
        : m_loop(loop)
    {
    }
    Result<void> block_resize(const std::string& device, uint64_t size_bytes) override
    {
        in_resize = true;
        if (during_resize)
            m_loop.schedule(during_resize);
        m_loop.run_once(0); // what run_until_complete does while I/O is in flight
        m_loop.run_once(0);
        in_resize = false;
        return FakeMachine::block_resize(device, size_bytes);
    }
    Result<void> stop() override
    {
        stops_during_resize += in_resize;
        return FakeMachine::stop();
    }
    std::function<void()> during_resize;
    bool in_resize = false;
    int stops_during_resize = 0;

private:
    EventLoop& m_loop;
};

TEST(NestedCommand, InputArrivingDuringANestedCommandWaitsForIt)
{
    auto loop = EventLoop::create().value();
    NestedMachine machine(*loop);
    machine.m_state = RunState::Running;
    Monitor monitor(*loop, machine);
    std::string out_a, out_b;
    auto a = monitor.open_client(MonitorProtocol::Hmp, [&](std::string_view s) { out_a += s; });
    auto b = monitor.open_client(MonitorProtocol::Hmp, [&](std::string_view s) { out_b += s; });
    out_a.clear();
    out_b.clear();
    // B types "stop" (and A a second command) while A's block_resize runs.
    machine.during_resize = [&] {
        b->feed("stop\r");
        a->feed("info status\r");
    };
    a->feed("block_resize ide0-hd0 32\r");
    EXPECT_EQ(machine.stops_during_resize, 0);
    EXPECT_EQ(machine.m_state, RunState::Paused); // B's stop ran afterwards
    // A's replies in order: the resize's (empty) output, then info status.
    auto resize_end = out_a.find("(kiln) ");
    ASSERT_NE(resize_end, std::string::npos) << out_a;
    EXPECT_NE(out_a.find("VM status: paused", resize_end), std::string::npos) << out_a;
    EXPECT_NE(out_b.find("stop"), std::string::npos) << out_b;
}

} // namespace
} // namespace kiln::monitor
