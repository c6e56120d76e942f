// The run phase end to end with a scripted vCPU: serial output reaches
// the chardev, guest power-off and reset end the run as -no-shutdown /
// -no-reboot say, and a halted vCPU stops cleanly when kiln quits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "system/vm.h"
#include "tests/unit/system/file_text.h"

namespace kiln::system {
namespace {

class ScriptedVcpu final : public Vcpu {
public:
    using Step = std::function<VcpuExit(hw::PcMachine&)>;
    ScriptedVcpu(hw::PcMachine& m, Step step) : m_machine(m), m_step(std::move(step)) {}
    accel::x86::CpuState& state() override { return m_state; }
    void power_on_reset() override {}
    VcpuExit run(uint64_t) override
    {
        runs++;
        return m_step(m_machine);
    }
    void kick() override {}
    void wake() override {}
    const char* accel_name() const override { return "scripted"; }
    int runs = 0;

private:
    hw::PcMachine& m_machine;
    Step m_step;
    accel::x86::CpuState m_state;
};

struct RunFixture : ::testing::Test {
    void SetUp() override
    {
        loop = EventLoop::create().value();
        out_path = "/tmp/kiln-run-test-" + std::to_string(getpid()) + ".txt";
        cfg.kernel = "unused";
        cfg.ram_bytes = 16ull << 20;
        chardev::ChardevSpec s;
        s.kind = chardev::ChardevKind::File;
        s.path = out_path;
        cfg.serials = {s};
    }
    void TearDown() override { unlink(out_path.c_str()); }
    std::unique_ptr<Vm> make(ScriptedVcpu::Step step)
    {
        auto vm = build_vm(cfg, *loop, [this](int) { loop->post([this] { loop->stop(); }); });
        EXPECT_TRUE(vm.ok()) << vm.error().message();
        auto v = std::move(vm).value();
        v->vcpu = std::make_unique<ScriptedVcpu>(*v->machine, std::move(step));
        return v;
    }
    std::string output() { return test::file_text(out_path); }
    std::unique_ptr<EventLoop> loop;
    std::string out_path;
    MachineConfig cfg;
};

TEST_F(RunFixture, SerialOutputThenAcpiPowerOffEndsTheRun)
{
    auto vm = make([](hw::PcMachine& m) {
        for (char c : std::string("hello\n"))
            m.pio_write(0x3f8, 1, uint8_t(c));
        m.pio_write(0x604, 2, 1u << 13); // SLP_TYP 0 (S5) | SLP_EN
        return VcpuExit::Budget;
    });
    EXPECT_EQ(run_vm(*vm, *loop), 0);
    EXPECT_EQ(output(), "hello\n");
}

TEST_F(RunFixture, ResetWithNoRebootExits)
{
    cfg.no_reboot = true;
    auto vm = make([](hw::PcMachine& m) {
        m.pio_write(0x64, 1, 0xfe);
        return VcpuExit::Budget;
    });
    EXPECT_EQ(run_vm(*vm, *loop), 0);
}

TEST_F(RunFixture, InternalErrorExitsWithStatus1)
{
    auto vm = make([](hw::PcMachine&) { return VcpuExit::Error; });
    EXPECT_EQ(run_vm(*vm, *loop), 1);
}

TEST_F(RunFixture, HaltedVcpuStopsWhenKilnQuits)
{
    auto vm = make([](hw::PcMachine& m) {
        // HLT with nothing armed: blocks until the stop request.
        return m.wait_for_interrupt() ? VcpuExit::Budget : VcpuExit::Stopped;
    });
    loop->add_timer_ns(20000000, [this] { loop->stop(); });
    EXPECT_EQ(run_vm(*vm, *loop), 0);
}

TEST_F(RunFixture, NoShutdownParksUntilQuit)
{
    cfg.no_shutdown = true;
    auto vm = make([](hw::PcMachine& m) {
        m.pio_write(0x604, 2, 1u << 13);
        return VcpuExit::Budget;
    });
    bool still_running = false;
    loop->add_timer_ns(20000000, [&] {
        still_running = true;
        loop->stop();
    });
    EXPECT_EQ(run_vm(*vm, *loop), 0);
    EXPECT_TRUE(still_running);
    EXPECT_FALSE(vm->machine->clock().running());
}

} // namespace
} // namespace kiln::system
