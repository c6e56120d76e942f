// Two vCPUs in one VM, each on its own thread: each sees its own APIC ID
// through CPUID, and a kick reaches only the vCPU it is meant for.
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/accel/kvm/kvm_test_support.h"

namespace kiln::test {
namespace {

using accel::VcpuExit;
using namespace std::chrono_literals;

// clang-format off
const std::vector<uint8_t> k_report_apic_id = {
    0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,                 // 1000: mov eax,0x1
    0x0f, 0xa2,                                         // 1006: cpuid
    0x66, 0xc1, 0xeb, 0x18,                             // 1008: shr ebx,0x18  (initial APIC ID)
    0x88, 0xd8,                                         // 100c: mov al,bl
    0xe6, 0x90,                                         // 100e: out 0x90,al
    0xeb, 0xfe,                                         // 1010: jmp 1010
};
// clang-format on

TEST(KvmSmp, EachVcpuHasItsApicIdAndItsOwnKick)
{
    KILN_REQUIRE_KVM();
    Payload p;
    p.name = "apic_id";
    p.memory = { { 0x1000, k_report_apic_id } };
    p.initial = real_mode_state(0x1000);
    KvmGuest g = guest_for(p);
    ASSERT_TRUE(g.vcpu);
    // The second vCPU's host: its own records; KVM only uses the VM's memory.
    auto mem = hw::GuestMemory::create(1 << 20, 1 << 20);
    ASSERT_TRUE(mem.ok());
    FakeVcpuHost host1(std::move(mem).value());
    auto vcpu1 = g.accel->create_vcpu(host1, 1);
    ASSERT_TRUE(vcpu1.ok()) << vcpu1.error().message();
    // Power-on state: only APIC ID 0 is the bootstrap processor.
    EXPECT_EQ((*vcpu1)->state().msr.apic_base & (1u << 8), 0u);
    EXPECT_NE(g.vcpu->state().msr.apic_base & (1u << 8), 0u);
    x86::CpuState ap = p.initial;
    ap.msr.apic_base &= ~uint64_t(1u << 8);
    ASSERT_TRUE((*vcpu1)->set_state(ap).ok());

    std::atomic<bool> cpu0_returned { false };
    TimedRun r0;
    std::thread t0([&] {
        r0 = run_with_limit(*g.vcpu, 60s);
        cpu0_returned = true;
    });
    TimedRun r1;
    std::thread t1([&] { r1 = run_with_limit(**vcpu1, 60s); });

    // Let both report their ID, then stop only vCPU 1.
    std::this_thread::sleep_for(200ms);
    (*vcpu1)->kick();
    t1.join();
    EXPECT_FALSE(cpu0_returned.load()) << "kicking vCPU 1 stopped vCPU 0 too";
    g.vcpu->kick();
    t0.join();

    ASSERT_FALSE(r0.timed_out);
    ASSERT_FALSE(r1.timed_out);
    ASSERT_TRUE(r0.exit.ok()) << r0.exit.error().message();
    ASSERT_TRUE(r1.exit.ok()) << r1.exit.error().message();
    EXPECT_EQ(*r0.exit, VcpuExit::Kicked);
    EXPECT_EQ(*r1.exit, VcpuExit::Kicked);
    EXPECT_EQ(g.host->pio_writes, (std::vector<PioWrite> { { 0x90, 1, 0 } }));
    EXPECT_EQ(host1.pio_writes, (std::vector<PioWrite> { { 0x90, 1, 1 } }));
    EXPECT_EQ((*vcpu1)->state().apic_id, 1u);
}

} // namespace
} // namespace kiln::test
