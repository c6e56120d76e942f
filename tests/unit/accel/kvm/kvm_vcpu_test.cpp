// The vCPU run loop: kicks from other threads, interrupts raised while the
// guest runs, NMIs, HLT across runs, lazy state transfer, reset.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

using accel::VcpuExit;
using namespace std::chrono_literals;
namespace x86 = accel::x86;

// Real-mode code at 0x1000 and nothing else.
Payload code_payload(std::vector<uint8_t> code)
{
    Payload p;
    p.name = "inline";
    p.memory = { { 0x1000, std::move(code) } };
    p.initial = real_mode_state(0x1000);
    return p;
}

// Real mode: vector 0x20 through the IVT to an IRET at 0000:1100.
void install_iret_handler(FakeVcpuHost& host)
{
    const uint8_t ivt_entry[4] = { 0x00, 0x11, 0x00, 0x00 };
    const uint8_t iret = 0xcf;
    EXPECT_TRUE(host.memory().write(0x20 * 4, ivt_entry, sizeof ivt_entry).ok());
    EXPECT_TRUE(host.memory().write(0x1100, &iret, 1).ok());
}

// The halted guest gets vector 0x20 (install_iret_handler): HLT ends, the
// handler returns past it, MOV AX,0x55 runs and the next HLT stops at
// `final_rip`.
void expect_woken_by_vector_20(KvmGuest& g, uint64_t final_rip)
{
    g.host->raise_interrupt(0x20);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.host->acked, std::vector<uint8_t> { 0x20 });
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0x55u);
    EXPECT_EQ(g.vcpu->state().rip, final_rip);
}

TEST(KvmVcpu, KickFromAnotherThreadStopsASpinningGuest)
{
    KILN_REQUIRE_KVM();
    Payload p = code_payload({ 0xeb, 0xfe }); // 1000: jmp 1000
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    std::thread kicker([&] {
        std::this_thread::sleep_for(100ms);
        g.vcpu->kick();
    });
    TimedRun r = run_with_limit(*g.vcpu, 30s);
    kicker.join();
    ASSERT_FALSE(r.timed_out);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Kicked);
    std::printf("[ timing ] kick to return: guest spun for %.1f ms in total\n", r.elapsed_ms);
    EXPECT_EQ(g.vcpu->state().rip, 0x1000u);
    EXPECT_GE(g.vcpu->stats().intr, 1u);
}

TEST(KvmVcpu, KickBeforeRunReturnsWithoutEnteringTheGuest)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(code_payload({ 0xeb, 0xfe }));
    ASSERT_TRUE(g.vcpu);
    g.vcpu->kick();
    auto r = g.vcpu->run();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, VcpuExit::Kicked);
    EXPECT_EQ(g.vcpu->stats().runs, 0u);
    // The kick is consumed: the next run enters the guest.
    g.host->on_reset = nullptr;
    std::thread kicker([&] {
        std::this_thread::sleep_for(50ms);
        g.vcpu->kick();
    });
    TimedRun again = run_with_limit(*g.vcpu, 30s);
    kicker.join();
    ASSERT_TRUE(again.exit.ok());
    EXPECT_GE(g.vcpu->stats().runs, 1u);
}

TEST(KvmVcpu, WakeDeliversAnInterruptRaisedWhileTheGuestSpins)
{
    KILN_REQUIRE_KVM();
    Payload p = payload("interrupt_idt");
    p.irqs_at_start.clear();
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    std::thread device([&] {
        std::this_thread::sleep_for(100ms);
        g.host->raise_interrupt(0x20);
        g.vcpu->wake();
    });
    TimedRun r = run_with_limit(*g.vcpu, 30s);
    device.join();
    ASSERT_FALSE(r.timed_out);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped); // wake() did not make run() return
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rbx], 0x1111u);
    EXPECT_EQ(g.host->acked, std::vector<uint8_t> { 0x20 });
    EXPECT_EQ(g.vcpu->stats().interrupts_injected, 1u);
}

TEST(KvmVcpu, InterruptWaitsForTheWindow)
{
    KILN_REQUIRE_KVM();
    const Payload& p = payload("interrupt_idt"); // IF=0 at start, STI later
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_GE(g.vcpu->stats().irq_window, 1u); // asked KVM for the window, got the exit
    EXPECT_EQ(g.vcpu->stats().interrupts_injected, 1u);
}

TEST(KvmVcpu, NmiGoesInWithKvmNmiEvenWithInterruptsOff)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(payload("nmi_idt")); // the host latches the NMI before the run
    ASSERT_TRUE(g.vcpu);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.host->nmis_acked, 1u);
    EXPECT_EQ(g.vcpu->stats().nmis_injected, 1u);
    EXPECT_EQ(g.vcpu->stats().irq_window, 0u); // NMIs do not wait for IF
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rbx], 0x1111u);
    EXPECT_TRUE(g.host->acked.empty());
}

TEST(KvmVcpu, StoppedInHltWaitsAgainWhenRunResumes)
{
    KILN_REQUIRE_KVM();
    // clang-format off
    KvmGuest g = guest_for(code_payload({
        0xf4,             // 1000: hlt
        0xb8, 0x55, 0x00, // 1001: mov ax,0x55
        0xf4,             // 1004: hlt
    }));
    // clang-format on
    ASSERT_TRUE(g.vcpu);
    TimedRun r1 = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r1.exit.ok()) << r1.exit.error().message();
    EXPECT_EQ(*r1.exit, VcpuExit::Stopped);
    EXPECT_TRUE(g.vcpu->state().halted);
    EXPECT_EQ(g.host->waits, 1u);

    TimedRun r2 = run_with_limit(*g.vcpu); // still nothing to wake it
    ASSERT_TRUE(r2.exit.ok());
    EXPECT_EQ(*r2.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.host->waits, 2u);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0u); // did not run on

    // A wake-up with nothing to take (IF=0 here) leaves it halted, as on
    // hardware and in the interpreter.
    g.host->spurious_wakeups = 1;
    TimedRun r3 = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r3.exit.ok());
    EXPECT_EQ(*r3.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.host->waits, 4u);
    EXPECT_TRUE(g.vcpu->state().halted);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0u);

    // An interrupt with IF set ends the HLT: the handler runs, returns to
    // the instruction after the HLT, and the guest goes on.
    install_iret_handler(*g.host);
    g.vcpu->state().rflags |= x86::k_flag_if;
    expect_woken_by_vector_20(g, 0x1005);
}

TEST(KvmVcpu, KickWhileHaltedReturnsWithTheCpuStillHalted)
{
    KILN_REQUIRE_KVM();
    // clang-format off
    KvmGuest g = guest_for(code_payload({
        0xfb,             // 1000: sti
        0xf4,             // 1001: hlt
        0xb8, 0x55, 0x00, // 1002: mov ax,0x55
        0xfa,             // 1005: cli
        0xf4,             // 1006: hlt
    }));
    // clang-format on
    ASSERT_TRUE(g.vcpu);
    install_iret_handler(*g.host);
    // The board's kick while the vCPU waits in HLT: the wait returns with
    // nothing pending.
    g.host->on_wait = [&] {
        g.vcpu->kick();
        g.host->spurious_wakeups = 1;
        g.host->on_wait = nullptr;
    };
    TimedRun r1 = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r1.exit.ok()) << r1.exit.error().message();
    EXPECT_EQ(*r1.exit, VcpuExit::Kicked);
    EXPECT_TRUE(g.vcpu->state().halted);
    EXPECT_EQ(g.vcpu->state().rip, 0x1002u);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0u); // did not run on

    expect_woken_by_vector_20(g, 0x1007);
}

TEST(KvmVcpu, HaltedStateWithAnInterruptOwedResumesAtOnce)
{
    // A state (loadvm, another accelerator) halted but with an interrupt
    // already acknowledged from the APIC: the CPU takes it, no wait.
    KILN_REQUIRE_KVM();
    // clang-format off
    Payload p = code_payload({
        0xf4,             // 1000: hlt
        0xb8, 0x55, 0x00, // 1001: mov ax,0x55
        0xf4,             // 1004: hlt
    });
    // clang-format on
    p.initial.rip = 0x1001; // just past the first HLT
    p.initial.halted = true;
    p.initial.rflags |= x86::k_flag_if;
    p.initial.events.interrupt_injected = true;
    p.initial.events.interrupt_vector = 0x20;
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    install_iret_handler(*g.host);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.host->waits, 1u); // only at the second HLT
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0x55u);
    EXPECT_EQ(g.vcpu->state().rip, 0x1005u);
}

TEST(KvmVcpu, MaskedInterruptDoesNotEndHlt)
{
    KILN_REQUIRE_KVM();
    // clang-format off
    KvmGuest g = guest_for(code_payload({
        0xfa,             // 1000: cli
        0xf4,             // 1001: hlt
        0xb8, 0x55, 0x00, // 1002: mov ax,0x55
        0xf4,             // 1005: hlt
    }));
    // clang-format on
    ASSERT_TRUE(g.vcpu);
    g.host->raise_interrupt(0x20); // pending throughout, masked by IF=0
    std::thread kicker([&] {
        std::this_thread::sleep_for(100ms);
        g.vcpu->kick();
    });
    TimedRun r = run_with_limit(*g.vcpu, 30s);
    kicker.join();
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Kicked); // the kick still ends run()
    EXPECT_TRUE(g.vcpu->state().halted);
    EXPECT_EQ(g.vcpu->state().rip, 0x1002u);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax] & 0xffff, 0u);
    EXPECT_TRUE(g.host->acked.empty());
    std::printf("[ info ] masked-interrupt HLT: %u waits in ~100 ms\n", g.host->waits);
}

TEST(KvmVcpu, LoweringCr8IsNotAnError)
{
    // With Kiln's own APIC, KVM exits with KVM_EXIT_SET_TPR when 64-bit
    // code lowers CR8 (Windows does it all the time); the run goes on and
    // CR8 stays in the CPU state.
    KILN_REQUIRE_KVM();
    // clang-format off
    KvmGuest g = guest_for(long_mode_payload({
        0xb8, 0x0f, 0x00, 0x00, 0x00, // 1000: mov eax,15
        0x44, 0x0f, 0x22, 0xc0,       // 1005: mov cr8,rax
        0x31, 0xc0,                   // 1009: xor eax,eax
        0x44, 0x0f, 0x22, 0xc0,       // 100b: mov cr8,rax
        0xbb, 0x0d, 0x60, 0x00, 0x00, // 100f: mov ebx,0x600d
        0xf4,                         // 1014: hlt
    }));
    // clang-format on
    ASSERT_TRUE(g.vcpu);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rbx], 0x600du);
    EXPECT_EQ(g.vcpu->state().cr8, 0u);
}

TEST(KvmVcpu, Cr8FromTheStateReachesTheGuest)
{
    // With a userspace APIC, KVM loads CR8 from kvm_run->cr8 on every
    // KVM_RUN: a CR8 written with the state must go there too.
    KILN_REQUIRE_KVM();
    Payload p = long_mode_payload({
        0x44, 0x0f, 0x20, 0xc0, // 1000: mov rax,cr8
        0xf4, // 1004: hlt
    });
    p.initial.cr8 = 9;
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax], 9u);
    EXPECT_EQ(g.vcpu->state().cr8, 9u);
}

TEST(KvmVcpu, StateChangedBetweenRunsIsWrittenBack)
{
    KILN_REQUIRE_KVM();
    Payload p = code_payload({ 0xb8, 0x01, 0x00, 0xf4 }); // 1000: mov ax,1; hlt
    p.memory.push_back({ 0x2000, { 0xb8, 0x02, 0x00, 0xf4 } }); // 2000: mov ax,2; hlt
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    ASSERT_TRUE(run_with_limit(*g.vcpu).exit.ok());
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax], 1u);
    x86::CpuState& s = g.vcpu->state();
    s.rip = 0x2000;
    s.halted = false;
    s.gpr[x86::k_rbx] = 0xabcd;
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rax], 2u);
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rbx], 0xabcdu);
    EXPECT_EQ(g.vcpu->state().rip, 0x2004u);
}

TEST(KvmVcpu, PowerOnResetStartsAtTheResetVector)
{
    KILN_REQUIRE_KVM();
    const Payload& p = payload("real_to_long_mode");
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    ASSERT_TRUE(run_with_limit(*g.vcpu).exit.ok());
    EXPECT_TRUE(g.vcpu->state().long_mode_active());
    g.vcpu->reset(x86::ResetKind::PowerOn);
    auto s = g.vcpu->get_state();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->rip, 0xfff0u);
    EXPECT_EQ(s->segment(x86::Seg::CS).base, 0xffff0000u);
    EXPECT_EQ(s->cr0, x86::k_cr0_et | x86::k_cr0_cd | x86::k_cr0_nw);
    EXPECT_EQ(s->efer, 0u);
    EXPECT_FALSE(s->halted);
    // And KVM really has it: push, read back from the kernel.
    ASSERT_TRUE(g.vcpu->set_state(*s).ok());
    auto k = g.vcpu->get_state();
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(k->segment(x86::Seg::CS).selector, 0xf000);
}

TEST(KvmVcpu, InitResetKeepsFpuAndMtrrsFromKvm)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(code_payload({ 0xf4 }));
    ASSERT_TRUE(g.vcpu);
    x86::CpuState s = real_mode_state(0x1000);
    s.fpu.fcw = 0x027f;
    s.fpu.xmm[2].q[1] = 0x5555aaaa5555aaaaull;
    s.msr.mtrr_def_type = 0xc06;
    ASSERT_TRUE(g.vcpu->set_state(s).ok());
    ASSERT_TRUE(run_with_limit(*g.vcpu).exit.ok()); // the state now lives in KVM
    g.vcpu->reset(x86::ResetKind::Init);
    auto k = g.vcpu->get_state();
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(k->rip, 0xfff0u);
    EXPECT_FALSE(k->halted);
    EXPECT_EQ(k->fpu.fcw, 0x027f);
    EXPECT_EQ(k->fpu.xmm[2].q[1], 0x5555aaaa5555aaaaull);
    bool have_mtrr = false;
    for (uint32_t m : g.vcpu->msrs())
        have_mtrr |= m == 0x2ff;
    if (have_mtrr) {
        EXPECT_EQ(k->msr.mtrr_def_type, 0xc06u);
    }
}

TEST(KvmVcpu, InvalidStateIsRefusedWithTheIoctlNamed)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(code_payload({ 0xf4 }));
    ASSERT_TRUE(g.vcpu);
    x86::CpuState bad = real_mode_state(0x1000);
    bad.cr0 = x86::k_cr0_pg; // paging without protection: no CPU accepts it
    auto r = g.vcpu->set_state(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("KVM_SET_SREGS failed"), std::string::npos) << r.error().message();
    // run() reports the same instead of entering the guest.
    auto run = g.vcpu->run();
    ASSERT_FALSE(run.ok());
    EXPECT_EQ(g.vcpu->stats().runs, 0u);
}

} // namespace
} // namespace kiln::test
