// The same payloads under KVM and under Kiln's interpreter: both must end
// in the documented state, and in the same architectural state as each
// other (the interpreter's correctness oracle at system level).
#include <cstring>

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
    ::testing::Values("real_mode_pio", "real_to_long_mode", "protected_mode_mmio", "interrupt_idt", "nmi_idt",
        "real_mode_irq", "hlt_timer", "triple_fault", "triple_fault_pm", "triple_fault_lm", "i8042_reset"),
    [](const auto& info) { return info.param; });

// The interpreter's own boot payload (tests/unit/accel/payloads/boot.S):
// reset vector -> real mode IVT interrupt -> protected mode -> PAE -> long
// mode -> #UD and #PF through the IDT -> STI; HLT woken by vector 0x20.
const uint8_t k_boot[] = {
#include "tests/unit/accel/payloads/boot.inc"
};

std::unique_ptr<FakeVcpuHost> make_boot_host()
{
    auto mem = hw::GuestMemory::create(64ull << 20, 64ull << 20);
    EXPECT_TRUE(mem.ok());
    if (!mem.ok())
        return nullptr;
    auto host = std::make_unique<FakeVcpuHost>(std::move(mem).value());
    std::vector<uint8_t> rom(0x10000, 0xf4);
    const uint8_t jmp[] = { 0xea, 0x00, 0x7c, 0x00, 0x00 }; // fff0: jmp 0000:7c00
    std::memcpy(rom.data() + 0xfff0, jmp, sizeof jmp);
    EXPECT_TRUE(host->memory().add_rom(0xffff0000, rom, "bios").ok());
    EXPECT_TRUE(host->memory().write(0x7c00, k_boot, sizeof k_boot).ok());
    host->arm_timer(0x20); // the first HLT is woken by vector 0x20, the second stops
    return host;
}

std::string port_e9(const FakeVcpuHost& host)
{
    std::string s;
    for (auto& w : host.pio_writes)
        if (w.port == 0xe9)
            s += char(w.value);
    return s;
}

TEST(CrossCheck, BootFromTheResetVectorToLongMode)
{
    auto ihost = make_boot_host();
    ASSERT_TRUE(ihost);
    auto model = x86::CpuModel::by_name("qemu64");
    ASSERT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(*ihost, *model);
    ASSERT_TRUE(cpu.ok());
    EXPECT_EQ((*cpu)->run(1'000'000), interp::RunExit::Stopped);
    x86::CpuState in = (*cpu)->state();
    EXPECT_EQ(port_e9(*ihost), "RVPLUAFBID");

    KILN_REQUIRE_KVM();
    auto g = make_kvm_guest(make_boot_host());
    ASSERT_TRUE(g.ok()) << g.error().message();
    TimedRun r = run_with_limit(*g->vcpu);
    ASSERT_FALSE(r.timed_out);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    std::printf("[ timing ] kvm boot payload (reset vector to long mode): %.1f ms, %llu KVM_RUN calls\n", r.elapsed_ms,
        (unsigned long long)g->vcpu->stats().runs);
    EXPECT_EQ(port_e9(*g->host), "RVPLUAFBID");
    auto k = g->vcpu->get_state();
    ASSERT_TRUE(k.ok());
    EXPECT_TRUE(k->long_mode_active());
    EXPECT_EQ(k->gpr[x86::k_rcx], 0x40000000u); // CR2 of the #PF, as the handler saw it
    EXPECT_TRUE(k->halted);
    expect_same_architectural_state(in, *k);
    EXPECT_EQ(ihost->pio_writes, g->host->pio_writes);
    EXPECT_EQ(ihost->acked, g->host->acked);
}

} // namespace
} // namespace kiln::test
