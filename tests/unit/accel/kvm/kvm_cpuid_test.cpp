// CPUID models under KVM: named models masked by KVM's table, `-cpu host`
// filtered into what Kiln's state can carry.
#include <cstdio>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_cpuid.h"
#include "accel/kvm/kvm_device.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"

namespace kiln::accel::kvm {
namespace {

using x86::CpuidResult;

// A KVM-like supported table: everything qemu64 wants except CX16, plus
// AVX-512 and x2APIC that Kiln must not pass through, and KVM PV leaves.
std::vector<CpuidEntry> fake_supported()
{
    std::vector<CpuidEntry> t;
    t.push_back({ 0, 0, false, { 0xd, 0x756e6547, 0x6c65746e, 0x49656e69 } });
    t.push_back({ 1, 0, false,
        { 0x50654, 0x00100800,
            x86::k_cpuid1_ecx_sse3 | x86::k_cpuid1_ecx_x2apic | x86::k_cpuid1_ecx_xsave | (1u << 28) /* AVX */
                | x86::k_cpuid1_ecx_hypervisor,
            0x178bfbff | (1u << 28) } });
    t.push_back({ 4, 0, true, { 0x1c004121 | (7u << 26), 0x1c0003f, 0x3f, 0 } });
    t.push_back({ 7, 0, true, { 0, (1u << 16) /* AVX512F */ | (1u << 5) /* AVX2 */ | x86::k_cpuid7_ebx_erms, 0, 0 } });
    t.push_back({ 0xa, 0, false, { 0x07300404, 0, 0, 0x603 } });
    t.push_back({ 0xd, 0, true, { 0xe7, 0x240, 0x980, 0 } });
    t.push_back({ 0xd, 1, true, { 0xf, 0, 0, 0 } });
    t.push_back({ 0xd, 2, true, { 0x100, 0x240, 0, 0 } });
    t.push_back({ 0xd, 5, true, { 0x40, 0x340, 0, 0 } });
    t.push_back({ 0x80000000, 0, false, { 0x80000008, 0, 0, 0 } });
    t.push_back({ 0x80000001, 0, false,
        { 0, 0, x86::k_cpuidx1_ecx_lahf_lm,
            x86::k_cpuidx1_edx_syscall | x86::k_cpuidx1_edx_nx | x86::k_cpuidx1_edx_lm } });
    t.push_back({ k_kvm_cpuid_signature, 0, false, { 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d } });
    t.push_back({ k_kvm_cpuid_features, 0, false,
        { k_kvm_feature_clocksource | k_kvm_feature_clocksource2 | (1u << 4) /* ASYNC_PF */
                | (1u << 6) /* PV_EOI */ | k_kvm_feature_clocksource_stable,
            0, 0, 1 /* REALTIME hint */ } });
    return t;
}

TEST(KvmCpuModel, NamedModelIsMaskedByKvmAndReportsDrops)
{
    auto m = KvmCpuModel::by_name("qemu64", fake_supported());
    ASSERT_TRUE(m.ok()) << m.error().message();
    const CpuidEntry* l1 = m->find(1);
    ASSERT_TRUE(l1);
    EXPECT_TRUE(l1->regs.ecx & x86::k_cpuid1_ecx_sse3);
    EXPECT_FALSE(l1->regs.ecx & x86::k_cpuid1_ecx_cx16); // qemu64 wants it, KVM lacks it
    EXPECT_TRUE(l1->regs.ecx & x86::k_cpuid1_ecx_hypervisor);
    ASSERT_EQ(m->dropped_features().size(), 1u);
    EXPECT_EQ(m->dropped_features()[0], "CPUID.01H:ECX[bit 13]");
    // The vendor and signature stay the model's, not the host's.
    EXPECT_EQ(m->find(0)->regs.ebx, 0x68747541u); // "Auth"
    EXPECT_EQ(m->signature(), l1->regs.eax);
}

TEST(KvmCpuModel, NamedModelGetsKvmclockOnlyWhenOfferedAndWanted)
{
    auto m = KvmCpuModel::by_name("qemu64", fake_supported());
    ASSERT_TRUE(m.ok());
    EXPECT_TRUE(m->has_kvmclock());
    const CpuidEntry* pv = m->find(k_kvm_cpuid_features);
    ASSERT_TRUE(pv);
    EXPECT_EQ(pv->regs.eax & ~k_kvm_features_allowed, 0u); // no PV EOI, no async PF
    EXPECT_EQ(pv->regs.edx, 0u);

    auto off = KvmCpuModel::by_name("qemu64", fake_supported(), KvmCpuOptions { .kvmclock = false });
    ASSERT_TRUE(off.ok());
    EXPECT_FALSE(off->has_kvmclock());

    std::vector<CpuidEntry> no_pv = fake_supported();
    no_pv.resize(no_pv.size() - 2);
    auto bare = KvmCpuModel::by_name("qemu64", no_pv);
    ASSERT_TRUE(bare.ok());
    EXPECT_EQ(bare->find(k_kvm_cpuid_signature), nullptr);
}

TEST(KvmCpuModel, UnknownModelIsAnError)
{
    auto m = KvmCpuModel::by_name("pentium9", fake_supported());
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message().find("pentium9"), std::string::npos);
}

TEST(KvmCpuModel, HostDropsStateKilnCannotCarry)
{
    KvmCpuModel m = KvmCpuModel::host(fake_supported());
    EXPECT_EQ(m.name(), "host");
    EXPECT_EQ(m.signature(), 0x50654u);
    const CpuidEntry* l1 = m.find(1);
    ASSERT_TRUE(l1);
    EXPECT_FALSE(l1->regs.ecx & x86::k_cpuid1_ecx_x2apic); // userspace irqchip: no x2APIC
    EXPECT_TRUE(l1->regs.ecx & (1u << 28)); // AVX state is in CpuState
    EXPECT_EQ((l1->regs.ebx >> 16) & 0xff, 1u); // one logical CPU per package
    const CpuidEntry* l7 = m.find(7, 0);
    ASSERT_TRUE(l7);
    EXPECT_FALSE(l7->regs.ebx & (1u << 16)); // AVX-512 dropped
    EXPECT_TRUE(l7->regs.ebx & (1u << 5)); // AVX2 kept
    const CpuidEntry* xs = m.find(0xd, 0);
    ASSERT_TRUE(xs);
    EXPECT_EQ(xs->regs.eax, 0x7u); // x87 | SSE | AVX only
    EXPECT_EQ(xs->regs.ecx, 832u);
    EXPECT_FALSE(m.find(0xd, 1)->regs.eax & (1u << 3)); // no XSAVES
    EXPECT_EQ(m.find(0xd, 5), nullptr); // AVX-512 component gone
    EXPECT_EQ(m.find(0xa)->regs.eax, 0u); // no PMU
    EXPECT_EQ(m.find(4, 0)->regs.eax >> 14, 0u); // one core, no sharing
}

TEST(KvmCpuModel, ApicIdGoesIntoLeaves1AndB)
{
    auto m = KvmCpuModel::by_name("max", fake_supported());
    ASSERT_TRUE(m.ok());
    auto entries = m->entries_for_apic(3);
    const CpuidEntry* l1 = find_cpuid(entries, 1, 0);
    ASSERT_TRUE(l1);
    EXPECT_EQ(l1->regs.ebx >> 24, 3u);
    const CpuidEntry* lb = find_cpuid(entries, 0xb, 1);
    ASSERT_TRUE(lb);
    EXPECT_TRUE(lb->indexed);
    EXPECT_EQ(lb->regs.edx, 3u);
}

TEST(KvmCpuModel, RealKvmTableYieldsUsableModels)
{
    std::string why;
    auto dev = test::open_kvm(why);
    if (!dev)
        GTEST_SKIP() << why;
    const auto& sup = dev->supported_cpuid();
    ASSERT_FALSE(sup.empty());
    std::printf("[ info ] KVM supported CPUID: %zu entries, MSR index list %s (%zu)\n", sup.size(),
        dev->has_msr_index_list() ? "available" : "refused", dev->msr_index_list().size());
    for (const char* name : { "host", "qemu64", "max" }) {
        auto m = KvmCpuModel::by_name(name, sup);
        ASSERT_TRUE(m.ok()) << name;
        const CpuidEntry* l1 = m->find(1);
        ASSERT_TRUE(l1) << name;
        EXPECT_NE(l1->regs.eax, 0u) << name;
        EXPECT_TRUE(l1->regs.edx & x86::k_cpuid1_edx_fpu) << name;
        std::string dropped;
        for (auto& d : m->dropped_features())
            dropped += " " + d;
        std::printf("[ info ] -cpu %s: signature %#x, kvmclock %s, dropped:%s\n", name, m->signature(),
            m->has_kvmclock() ? "yes" : "no", dropped.empty() ? " none" : dropped.c_str());
    }
}

} // namespace
} // namespace kiln::accel::kvm
