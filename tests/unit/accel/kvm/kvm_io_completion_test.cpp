// A vCPU stopped right at a PIO or MMIO exit: KVM finishes the instruction
// (IN data into RAX, MMIO read data into the register, RIP past it) only
// on the next KVM_RUN, so before the state leaves KVM the vCPU enters once
// with immediate_exit set (KvmVcpu::complete_pending_io). Without that, the
// state read here would show the instruction not yet done, and a state
// written back or moved to the interpreter would execute it a second time
// (a device read twice).
#include <functional>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

using accel::VcpuExit;
namespace interp = accel::interp;

// clang-format off
const std::vector<uint8_t> k_in_then_hlt = {     // real mode
    0xe4, 0xe0,                                  // 1000: in al,0xe0  (the counter: 1)
    0x89, 0xc3,                                  // 1002: mov bx,ax
    0xf4,                                        // 1004: hlt
};
const std::vector<uint8_t> k_mmio_read_then_hlt = { // flat protected mode, no paging
    0xa1, 0x00, 0x00, 0x00, 0xe0,                // 1000: mov eax,ds:0xe0000000
    0x89, 0xc3,                                  // 1005: mov ebx,eax
    0xf4,                                        // 1007: hlt
};
const std::vector<uint8_t> k_mmio_write_then_hlt = {
    0xc7, 0x05, 0x04, 0x00, 0x00, 0xe0,          // 1000: mov DWORD PTR ds:0xe0000004,0xcafef00d
    0x0d, 0xf0, 0xfe, 0xca,
    0xf4,                                        // 100a: hlt
};
// clang-format on

Payload in_payload()
{
    Payload p;
    p.name = "in_then_hlt";
    p.memory = { { 0x1000, k_in_then_hlt } };
    p.initial = real_mode_state(0x1000);
    return p;
}

Payload mmio_payload(const std::vector<uint8_t>& code)
{
    Payload p;
    p.name = "mmio_then_hlt";
    p.memory = { { 0x1000, code } };
    p.initial = flat_protected_mode_state(0x1000);
    return p;
}

// Runs until the hook fires once and kicks (run() must return Kicked), and
// reads the state as it leaves KVM.
x86::CpuState stop_in(KvmGuest& g, std::function<void()>& hook)
{
    hook = [&] {
        g.vcpu->kick();
        hook = nullptr;
    };
    TimedRun r = run_with_limit(*g.vcpu);
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exit.ok() && *r.exit == VcpuExit::Kicked)
        << (r.exit.ok() ? accel::vcpu_exit_name(*r.exit) : r.exit.error().message());
    auto s = g.vcpu->get_state();
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    return s.ok() ? *s : x86::CpuState {};
}

// Hands out state() (so it is written back before the next entry, as after
// any change) and runs on to the payload's HLT.
void resume_to_hlt(KvmGuest& g)
{
    g.vcpu->state();
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
}

TEST(KvmIoCompletion, InDataIsInRaxWhenStoppedAtThePioExit)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(in_payload());
    ASSERT_TRUE(g.vcpu);
    unsigned reads = 0;
    const x86::CpuState mid = stop_in(g, g.host->on_pio_read);
    EXPECT_EQ(mid.rip, 0x1002u); // past the IN
    EXPECT_EQ(mid.gpr[x86::k_rax] & 0xff, 1u); // its data landed

    // Written back (state() hands out a reference) and resumed: the IN
    // must not run again.
    g.vcpu->state().gpr[x86::k_rcx] = 0x77;
    g.host->on_pio_read = [&] { reads++; };
    resume_to_hlt(g);
    EXPECT_EQ(reads, 0u);
    auto end = g.vcpu->get_state();
    ASSERT_TRUE(end.ok());
    EXPECT_EQ(end->gpr[x86::k_rbx] & 0xff, 1u);
    EXPECT_EQ(end->gpr[x86::k_rcx], 0x77u);
    EXPECT_EQ(end->rip, 0x1005u);
}

TEST(KvmIoCompletion, InterpreterContinuesAfterTheCompletedIn)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(in_payload());
    ASSERT_TRUE(g.vcpu);
    const x86::CpuState mid = stop_in(g, g.host->on_pio_read);
    auto model = x86::CpuModel::by_name("qemu64");
    ASSERT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(*g.host, *model);
    ASSERT_TRUE(cpu.ok());
    (*cpu)->state() = mid;
    unsigned reads = 0;
    g.host->on_pio_read = [&] { reads++; };
    EXPECT_EQ((*cpu)->run(1000), interp::RunExit::Stopped);
    EXPECT_EQ(reads, 0u);
    EXPECT_EQ((*cpu)->state().gpr[x86::k_rbx] & 0xff, 1u);
    EXPECT_EQ((*cpu)->state().rip, 0x1005u);
}

TEST(KvmIoCompletion, MmioReadDataIsInTheRegisterWhenStoppedAtTheExit)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(mmio_payload(k_mmio_read_then_hlt));
    ASSERT_TRUE(g.vcpu);
    const x86::CpuState mid = stop_in(g, g.host->on_mmio_read);
    EXPECT_EQ(mid.rip, 0x1005u);
    EXPECT_EQ(mid.gpr[x86::k_rax] & 0xffffffff, 0x13121110u); // the test device's reset bytes

    resume_to_hlt(g);
    EXPECT_EQ(g.host->mmio.size(), 1u); // read once
    EXPECT_EQ(g.vcpu->state().gpr[x86::k_rbx] & 0xffffffff, 0x13121110u);
}

TEST(KvmIoCompletion, MmioWriteIsNotRepeatedAfterAStop)
{
    KILN_REQUIRE_KVM();
    KvmGuest g = guest_for(mmio_payload(k_mmio_write_then_hlt));
    ASSERT_TRUE(g.vcpu);
    const x86::CpuState mid = stop_in(g, g.host->on_mmio_write);
    EXPECT_EQ(mid.rip, 0x100au);
    resume_to_hlt(g);
    ASSERT_EQ(g.host->mmio.size(), 1u);
    EXPECT_EQ(g.host->mmio[0], (MmioAccess { true, 0xe0000004, 4, 0xcafef00d }));
}

} // namespace
} // namespace kiln::test
