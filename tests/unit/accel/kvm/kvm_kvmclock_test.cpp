// kvmclock: offered only when KVM has it and the model asks for it; a
// guest that enables it gets KVM's time structure in its RAM and the MSR
// moves with the CPU state; without it in CPUID the MSR faults (where KVM
// can enforce that), so a guest cannot depend on state Kiln would not move.
#include <cstring>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_msrs.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

namespace kvm = accel::kvm;

// clang-format off
const std::vector<uint8_t> k_enable_kvmclock = {       // real mode
    0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b,                 // 1000: mov ecx,0x4b564d01 (SYSTEM_TIME_NEW)
    0x66, 0xb8, 0x01, 0x70, 0x00, 0x00,                 // 1006: mov eax,0x7001     (0x7000 | enable)
    0x66, 0x31, 0xd2,                                   // 100c: xor edx,edx
    0x0f, 0x30,                                         // 100f: wrmsr
    0xbb, 0x0d, 0x60,                                   // 1011: mov bx,0x600d
    0xf4,                                               // 1014: hlt
};
const std::vector<uint8_t> k_gp_handler = {             // vector 13 through the IVT
    0xbb, 0xad, 0xde,                                   // 1100: mov bx,0xdead
    0xf4,                                               // 1103: hlt
};
// clang-format on

struct ClockGuest {
    std::unique_ptr<FakeVcpuHost> host;
    std::unique_ptr<kvm::KvmAccel> accel;
    std::unique_ptr<kvm::KvmVcpu> vcpu;
};

ClockGuest clock_guest(bool kvmclock)
{
    Payload p;
    p.name = "kvmclock";
    p.memory = { { 13 * 4, { 0x00, 0x11, 0x00, 0x00 } }, { 0x1000, k_enable_kvmclock }, { 0x1100, k_gp_handler } };
    ClockGuest g;
    g.host = make_payload_host(p);
    kvm::KvmOptions options;
    options.cpu_options.kvmclock = kvmclock;
    auto accel = kvm::KvmAccel::create(g.host->memory(), options);
    EXPECT_TRUE(accel.ok()) << accel.error().message();
    if (!accel.ok())
        return {};
    g.accel = std::move(accel).value();
    auto vcpu = g.accel->create_vcpu(*g.host, 0);
    EXPECT_TRUE(vcpu.ok()) << vcpu.error().message();
    if (!vcpu.ok())
        return {};
    g.vcpu = std::move(vcpu).value();
    EXPECT_TRUE(g.vcpu->set_state(real_mode_state(0x1000)).ok());
    return g;
}

bool has_msr(const kvm::KvmVcpu& v, uint32_t index)
{
    for (uint32_t m : v.msrs())
        if (m == index)
            return true;
    return false;
}

TEST(KvmClock, GuestEnablesItAndTheMsrMovesWithTheState)
{
    KILN_REQUIRE_KVM();
    ClockGuest g = clock_guest(true);
    ASSERT_TRUE(g.vcpu);
    if (!g.accel->cpu_model().has_kvmclock())
        GTEST_SKIP() << "this host's KVM does not offer kvmclock";
    EXPECT_TRUE(has_msr(*g.vcpu, kvm::k_msr_kvm_system_time_new));
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    auto s = g.vcpu->get_state();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->gpr[x86::k_rbx] & 0xffff, 0x600du);
    EXPECT_EQ(s->msr.kvm_system_time, 0x7001u);
    // KVM's pvclock_vcpu_time_info: version (even once written), ...,
    // tsc_to_system_mul at offset 24.
    uint32_t version = 0, mul = 0;
    ASSERT_TRUE(g.host->memory().read(0x7000, &version, 4).ok());
    ASSERT_TRUE(g.host->memory().read(0x7000 + 24, &mul, 4).ok());
    EXPECT_NE(version, 0u);
    EXPECT_EQ(version % 2, 0u);
    EXPECT_NE(mul, 0u);

    // Into another VM (a migration's destination): the MSR comes back.
    ClockGuest dest = clock_guest(true);
    ASSERT_TRUE(dest.vcpu);
    ASSERT_TRUE(dest.vcpu->set_state(*s).ok());
    auto back = dest.vcpu->get_state();
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->msr.kvm_system_time, 0x7001u);
}

TEST(KvmClock, NotAdvertisedMeansNotThereForTheGuest)
{
    KILN_REQUIRE_KVM();
    ClockGuest g = clock_guest(false);
    ASSERT_TRUE(g.vcpu);
    EXPECT_FALSE(g.accel->cpu_model().has_kvmclock());
    const kvm::CpuidEntry* pv = g.accel->cpu_model().find(kvm::k_kvm_cpuid_features);
    if (pv) {
        EXPECT_EQ(pv->regs.eax & (kvm::k_kvm_feature_clocksource | kvm::k_kvm_feature_clocksource2), 0u);
    }
    EXPECT_FALSE(has_msr(*g.vcpu, kvm::k_msr_kvm_system_time_new)); // not part of the state
    if (!g.vcpu->pv_features_enforced())
        GTEST_SKIP() << "KVM_CAP_ENFORCE_PV_FEATURE_CPUID is missing: KVM accepts the MSR anyway";
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    auto s = g.vcpu->get_state();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->gpr[x86::k_rbx] & 0xffff, 0xdeadu); // WRMSR raised #GP
    uint32_t version = 0;
    ASSERT_TRUE(g.host->memory().read(0x7000, &version, 4).ok());
    EXPECT_EQ(version, 0u); // KVM wrote nothing into guest RAM
}

} // namespace
} // namespace kiln::test
