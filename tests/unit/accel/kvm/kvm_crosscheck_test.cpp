// The same payloads under KVM and under Kiln's interpreter: both must end
// in the documented state, and in the same architectural state as each
// other (the interpreter's correctness oracle at system level).
#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

using accel::VcpuExit;
namespace interp = accel::interp;

struct InterpResult {
    interp::RunExit exit = interp::RunExit::InternalError;
    x86::CpuState state;
    std::unique_ptr<FakeVcpuHost> host;
};

InterpResult run_interpreter(const Payload& p)
{
    InterpResult out;
    out.host = make_payload_host(p);
    auto model = x86::CpuModel::by_name("qemu64");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(*out.host, *model);
    EXPECT_TRUE(cpu.ok());
    if (!cpu.ok())
        return out;
    interp::Interpreter& c = **cpu;
    out.host->on_reset = [&] { c.kick(); };
    c.state() = p.initial;
    // Payloads retire a few hundred instructions; the budget only guards
    // against a runaway interpreter.
    out.exit = c.run(1'000'000);
    out.host->on_reset = nullptr;
    out.state = c.state();
    return out;
}

class CrossCheckTest : public ::testing::TestWithParam<std::string> { };

TEST_P(CrossCheckTest, InterpreterMatchesKvm)
{
    const Payload& p = payload(GetParam());
    InterpResult in = run_interpreter(p);
    ASSERT_TRUE(in.host);
    interp::RunExit want = p.end == PayloadEnd::Stopped ? interp::RunExit::Stopped
        : p.end == PayloadEnd::Kicked                   ? interp::RunExit::Kicked
                                                        : interp::RunExit::Reset;
    EXPECT_EQ(in.exit, want) << interp::run_exit_name(in.exit);
    check_payload_result(p, *in.host, in.state);

    if (!p.check_cpu)
        return; // e.g. the triple fault: no defined end state to compare
    std::string why;
    if (!open_kvm(why))
        GTEST_SKIP() << "interpreter checked against the expectations only; " << why;
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    g.host->on_reset = [&] { g.vcpu->kick(); };
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_FALSE(r.timed_out);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    auto k = g.vcpu->get_state();
    ASSERT_TRUE(k.ok());
    expect_same_architectural_state(in.state, *k);
    EXPECT_EQ(in.host->pio_writes, g.host->pio_writes);
    EXPECT_EQ(in.host->mmio, g.host->mmio);
    EXPECT_EQ(in.host->acked, g.host->acked);
}

INSTANTIATE_TEST_SUITE_P(Payloads, CrossCheckTest,
    ::testing::Values("real_mode_pio", "real_to_long_mode", "protected_mode_mmio", "interrupt_idt", "real_mode_irq",
        "hlt_timer", "triple_fault", "i8042_reset"),
    [](const auto& info) { return info.param; });

} // namespace
} // namespace kiln::test
