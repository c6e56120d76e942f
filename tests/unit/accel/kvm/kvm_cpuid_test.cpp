// CPUID models under KVM: named models masked by KVM's table, `-cpu host`
// filtered into what Kiln's state can carry.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_cpuid.h"
#include "accel/kvm/kvm_device.h"
#include "accel/kvm/kvm_msrs.h"
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

// What a guest kernel cross-checks between leaves, and what Kiln's state
// imposes; one line per problem.
std::vector<std::string> coherence_problems(const KvmCpuModel& m, const std::vector<CpuidEntry>& supported)
{
    std::vector<std::string> out;
    auto regs = [&](uint32_t leaf, uint32_t sub = 0) {
        const CpuidEntry* e = m.find(leaf, sub);
        return e ? e->regs : CpuidResult {};
    };
    auto sup = [&](uint32_t leaf, uint32_t sub = 0) {
        const CpuidEntry* e = find_cpuid(supported, leaf, sub);
        return e ? e->regs : CpuidResult {};
    };
    auto check = [&](bool ok, const std::string& what) {
        if (!ok)
            out.push_back(m.name() + ": " + what);
    };
    const uint32_t max_basic = regs(0).eax, max_ext = regs(0x80000000).eax;
    for (const CpuidEntry& e : m.entries()) {
        char leaf[16];
        std::snprintf(leaf, sizeof leaf, "%#x", e.leaf);
        if (e.leaf < 0x40000000)
            check(e.leaf <= max_basic, std::string("leaf ") + leaf + " above leaf 0's maximum");
        else if (e.leaf >= 0x80000000)
            check(e.leaf <= max_ext, std::string("leaf ") + leaf + " above 0x80000000's maximum");
    }
    // Only bits KVM can run (the hypervisor bit is Kiln's to set).
    CpuidResult l1 = regs(1), s1 = sup(1);
    check(!(l1.ecx & ~(s1.ecx | x86::k_cpuid1_ecx_hypervisor)), "1.ECX has bits KVM lacks");
    check(!(l1.edx & ~s1.edx), "1.EDX has bits KVM lacks");
    CpuidResult l7 = regs(7), s7 = sup(7);
    check(!(l7.ebx & ~s7.ebx) && !(l7.ecx & ~s7.ecx) && !(l7.edx & ~s7.edx), "leaf 7 has bits KVM lacks");
    CpuidResult x1 = regs(0x80000001), sx1 = sup(0x80000001);
    check(!(x1.ecx & ~sx1.ecx) && !(x1.edx & ~sx1.edx), "0x80000001 has bits KVM lacks");
    // One logical CPU per package, interrupts through Kiln's own APIC.
    check(!(l1.ecx & (x86::k_cpuid1_ecx_x2apic | x86::k_cpuid1_ecx_tsc_deadline | x86::k_cpuid1_ecx_osxsave)),
        "x2APIC, TSC deadline or OSXSAVE offered");
    check(!(l1.ecx & (1u << 5)) && !(x1.ecx & (1u << 2)), "VMX or SVM offered");
    check(!(l1.edx & (1u << 28)) && ((l1.ebx >> 16) & 0xff) <= 1, "more than one logical CPU in leaf 1");
    check(!(x1.ecx & (1u << 1)), "CmpLegacy without HTT");
    check(!(regs(0x80000008).ecx & 0xf0ff), "0x80000008 ECX counts more than one core");
    for (uint32_t sub = 0; sub < 8; sub++) {
        check(!(regs(4, sub).eax & 0xfffc000), "leaf 4 says caches are shared");
        check(!(regs(0x8000001d, sub).eax & 0x3ffc000), "0x8000001d says caches are shared");
    }
    // XSAVE: only x87, SSE and AVX, with sizes that match.
    bool xsave = l1.ecx & x86::k_cpuid1_ecx_xsave, avx = l1.ecx & (1u << 28);
    CpuidResult d0 = regs(0xd, 0);
    if (xsave) {
        check((d0.eax & 3) == 3 && !(d0.eax & ~7u) && d0.edx == 0, "0xD.0 components beyond x87/SSE/AVX");
        check(d0.ecx == ((d0.eax & 4) ? 832u : 576u), "0xD.0 ECX size does not match its components");
        check(!(regs(0xd, 1).eax & (1u << 3)), "XSAVES offered");
        bool has_avx_leaf = m.find(0xd, 2) != nullptr;
        check(has_avx_leaf == bool(d0.eax & 4), "0xD.2 present without AVX in XCR0 or missing with it");
        if (has_avx_leaf)
            check(regs(0xd, 2).eax == 256 && regs(0xd, 2).ebx == 576, "0xD.2 is not AVX at offset 576");
        for (uint32_t sub = 3; sub < 64; sub++)
            check(m.find(0xd, sub) == nullptr, "0xD has a component beyond AVX");
    }
    check(!avx || (xsave && (d0.eax & 4)), "AVX without XSAVE of the AVX state");
    check(avx || !(l7.ebx & (1u << 5)), "AVX2 without AVX");
    check(!(l7.ebx & ((1u << 1) | (1u << 2) | (1u << 14) | (1u << 16))), "TSC_ADJUST, SGX, MPX or AVX-512 offered");
    check(!(l7.ecx & ((1u << 3) | (1u << 4) | (1u << 5))), "PKU or WAITPKG offered");
    check(regs(0xa).eax == 0, "a PMU is offered");
    // Paravirtual leaves: the signature with the feature leaf, only what
    // KVM offers and Kiln's state covers.
    bool pv = m.find(k_kvm_cpuid_features) != nullptr;
    check(pv == (m.find(k_kvm_cpuid_signature) != nullptr), "KVM signature and feature leaves not paired");
    if (pv) {
        check(regs(k_kvm_cpuid_signature).eax >= k_kvm_cpuid_features, "KVM signature leaf's maximum too low");
        uint32_t f = regs(k_kvm_cpuid_features).eax;
        check(!(f & ~k_kvm_features_allowed) && !(f & ~sup(k_kvm_cpuid_features).eax), "PV features beyond allowed");
    }
    return out;
}

std::string joined(const std::vector<std::string>& v)
{
    std::string s;
    for (auto& x : v)
        s += "\n  " + x;
    return s;
}

TEST(KvmCpuModel, EveryModelIsCoherentOnAFakeTable)
{
    for (const char* name : { "host", "qemu64", "max" }) {
        auto m = KvmCpuModel::by_name(name, fake_supported());
        ASSERT_TRUE(m.ok()) << name;
        auto problems = coherence_problems(*m, fake_supported());
        EXPECT_TRUE(problems.empty()) << joined(problems);
    }
}

TEST(KvmCpuModel, HostIsCoherentOnAnAmdLikeTable)
{
    // AMD's own topology views: CmpLegacy, NC = 1 (two cores), caches
    // shared by two threads in 0x8000001D, TOPOEXT's extended APIC ID.
    std::vector<CpuidEntry> t = fake_supported();
    t[0].regs = { 0xd, 0x68747541, 0x444d4163, 0x69746e65 }; // AuthenticAMD
    for (auto& e : t)
        if (e.leaf == 0x80000000)
            e.regs.eax = 0x8000001e;
        else if (e.leaf == 0x80000001)
            e.regs.ecx |= (1u << 1) | (1u << 22);
    t.push_back({ 0x80000008, 0, false, { 0x3030, (1u << 24) /* SSBD */, 0x7001, 0 } });
    t.push_back({ 0x8000001d, 0, true, { 0x4163, 0x3c0003f, 0x7fff, 1 } });
    t.push_back({ 0x8000001e, 0, false, { 7, 0x100, 0x300, 0 } });
    KvmCpuModel m = KvmCpuModel::host(t);
    auto problems = coherence_problems(m, t);
    EXPECT_TRUE(problems.empty()) << joined(problems);
    auto for_cpu3 = m.entries_for_apic(3);
    const CpuidEntry* topo = find_cpuid(for_cpu3, 0x8000001e, 0);
    ASSERT_TRUE(topo);
    EXPECT_EQ(topo->regs.eax, 3u); // the extended APIC ID is the vCPU's
    EXPECT_EQ(topo->regs.ebx, 0u); // one thread per core
    // SPEC_CTRL moves with the state when AMD's SSBD bit makes it writable.
    auto msrs = candidate_msrs(m);
    EXPECT_NE(std::find(msrs.begin(), msrs.end(), 0x48u), msrs.end());
}

TEST(KvmCpuModel, EveryModelIsCoherentOnTheRealTable)
{
    std::string why;
    auto dev = test::open_kvm(why);
    if (!dev)
        GTEST_SKIP() << why;
    for (const char* name : { "host", "qemu64", "max" }) {
        auto m = KvmCpuModel::by_name(name, dev->supported_cpuid());
        ASSERT_TRUE(m.ok()) << name;
        auto problems = coherence_problems(*m, dev->supported_cpuid());
        EXPECT_TRUE(problems.empty()) << joined(problems);
    }
}

// clang-format off
// Flat protected mode: for each (leaf, subleaf) pair at 0x9000 until leaf
// 0xffffffff, CPUID and OUT EAX, EBX, ECX, EDX to port 0x80.
const std::vector<uint8_t> k_cpuid_dump = {
    0xbe, 0x00, 0x90, 0x00, 0x00,   // 1000: mov esi,0x9000
    0x8b, 0x06,                     // 1005: mov eax,[esi]
    0x83, 0xf8, 0xff,               // 1007: cmp eax,-1
    0x74, 0x18,                     // 100a: je 1024
    0x8b, 0x4e, 0x04,               // 100c: mov ecx,[esi+4]
    0x0f, 0xa2,                     // 100f: cpuid
    0xe7, 0x80,                     // 1011: out 0x80,eax
    0x89, 0xd8,                     // 1013: mov eax,ebx
    0xe7, 0x80,                     // 1015: out 0x80,eax
    0x89, 0xc8,                     // 1017: mov eax,ecx
    0xe7, 0x80,                     // 1019: out 0x80,eax
    0x89, 0xd0,                     // 101b: mov eax,edx
    0xe7, 0x80,                     // 101d: out 0x80,eax
    0x83, 0xc6, 0x08,               // 101f: add esi,8
    0xeb, 0xe1,                     // 1022: jmp 1005
    0xf4,                           // 1024: hlt
};
// clang-format on

TEST(KvmCpuModel, GuestSeesTheHostModel)
{
    KILN_REQUIRE_KVM();
    // Leaves KVM passes through as set (leaf 1's ECX minus OSXSAVE, which
    // follows the guest's CR4; 0xD.0 minus EBX, which follows its XCR0).
    const std::vector<std::pair<uint32_t, uint32_t>> leaves
        = { { 0, 0 }, { 1, 0 }, { 7, 0 }, { 0xd, 0 }, { 0x80000000, 0 }, { 0x80000001, 0 }, { 0x80000008, 0 },
              { k_kvm_cpuid_signature, 0 }, { k_kvm_cpuid_features, 0 } };
    test::Payload p;
    p.name = "cpuid_dump";
    std::vector<uint8_t> list;
    auto put32 = [&](uint32_t v) {
        for (int i = 0; i < 4; i++)
            list.push_back(uint8_t(v >> (8 * i)));
    };
    for (auto [leaf, sub] : leaves) {
        put32(leaf);
        put32(sub);
    }
    put32(0xffffffff);
    put32(0);
    p.memory = { { 0x1000, k_cpuid_dump }, { 0x9000, list } };
    p.initial = test::flat_protected_mode_state(0x1000);
    test::KvmGuest g = test::guest_for(p, "host");
    ASSERT_TRUE(g.vcpu);
    test::TimedRun r = test::run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    ASSERT_EQ(g.host->pio_writes.size(), 4 * leaves.size());
    auto model = g.vcpu->model().entries_for_apic(0);
    const CpuidEntry* l1 = find_cpuid(model, 1, 0);
    ASSERT_TRUE(l1);
    uint32_t guest_l1_ecx = g.host->pio_writes[4 * 1 + 2].value & ~x86::k_cpuid1_ecx_osxsave;
    if (guest_l1_ecx != l1->regs.ecx && !g.accel->device().hardware_virtualization())
        GTEST_SKIP() << "this host's KVM (no VMX/SVM) does not apply the CPUID model: the guest reads the real CPU's "
                     << "leaf 1 ECX " << std::hex << guest_l1_ecx << ", not the model's " << l1->regs.ecx;
    for (size_t i = 0; i < leaves.size(); i++) {
        auto [leaf, sub] = leaves[i];
        const CpuidEntry* want = find_cpuid(model, leaf, sub);
        CpuidResult w = want ? want->regs : CpuidResult {};
        const auto* got = &g.host->pio_writes[4 * i];
        SCOPED_TRACE(testing::Message() << "leaf " << std::hex << leaf << "." << sub);
        EXPECT_EQ(got[0].value, w.eax);
        if (leaf != 0xd) {
            EXPECT_EQ(got[1].value, w.ebx);
        }
        EXPECT_EQ(got[2].value & ~(leaf == 1 ? x86::k_cpuid1_ecx_osxsave : 0u), w.ecx);
        EXPECT_EQ(got[3].value, w.edx);
    }
}

} // namespace
} // namespace kiln::accel::kvm
