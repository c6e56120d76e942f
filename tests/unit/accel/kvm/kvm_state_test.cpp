// CpuState <-> KVM structure conversions (no /dev/kvm needed).
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_msrs.h"
#include "accel/kvm/kvm_state.h"

namespace kiln::accel::kvm {
namespace {

using namespace x86;

TEST(KvmSegment, AttributesMapFieldByField)
{
    SegmentCache cs { 0x10, uint16_t(k_seg_g | k_seg_l | k_seg_p | k_seg_s | (3 << k_seg_dpl_shift) | 0xb), 0xffffffff,
        0x1000 };
    kvm_segment k;
    segment_to_kvm(cs, k);
    EXPECT_EQ(k.selector, 0x10);
    EXPECT_EQ(k.base, 0x1000u);
    EXPECT_EQ(k.limit, 0xffffffffu);
    EXPECT_EQ(k.type, 0xb);
    EXPECT_EQ(k.s, 1);
    EXPECT_EQ(k.dpl, 3);
    EXPECT_EQ(k.present, 1);
    EXPECT_EQ(k.l, 1);
    EXPECT_EQ(k.db, 0);
    EXPECT_EQ(k.g, 1);
    EXPECT_EQ(k.unusable, 0);
    SegmentCache back = segment_from_kvm(k);
    EXPECT_EQ(back.attr, cs.attr);
    EXPECT_EQ(back.selector, cs.selector);
}

TEST(KvmSegment, NotPresentIsUnusableBothWays)
{
    SegmentCache null_seg { 0, 0x3 | k_seg_s, 0, 0 };
    kvm_segment k;
    segment_to_kvm(null_seg, k);
    EXPECT_EQ(k.unusable, 1);
    k.present = 1; // VMX may report P with unusable set: the cache is still unusable
    EXPECT_FALSE(segment_from_kvm(k).present());
}

CpuState sample_state()
{
    CpuState s;
    for (unsigned i = 0; i < k_gpr_count; i++)
        s.gpr[i] = 0x1111111111111111ull * (i + 1);
    s.rip = 0xffffffff81000000ull;
    s.rflags = k_flag_fixed1 | k_flag_if | k_flag_zf;
    s.cr0 = 0x80050033;
    s.cr2 = 0xdead000;
    s.cr3 = 0x1234000;
    s.cr4 = 0x3606f0;
    s.cr8 = 0xa;
    s.efer = 0xd01;
    s.msr.apic_base = 0xfee00900;
    s.gdtr = { 0xfffffe0000001000ull, 0x7f };
    s.idtr = { 0xfffffe0000000000ull, 0xfff };
    s.segment(Seg::FS).base = 0x7f0000001000ull;
    s.segment(Seg::GS).base = 0xffff888000000000ull;
    for (unsigned i = 0; i < 4; i++)
        s.dr[i] = 0x1000 * (i + 1);
    s.dr[6] = 0xffff4ff0;
    s.dr[7] = 0x401;
    return s;
}

TEST(KvmRegs, GprOrderIsKvmsNotModrms)
{
    CpuState s = sample_state();
    kvm_regs r;
    regs_to_kvm(s, r);
    EXPECT_EQ(r.rax, s.gpr[k_rax]);
    EXPECT_EQ(r.rbx, s.gpr[k_rbx]); // ModRM order is rax, rcx, rdx, rbx
    EXPECT_EQ(r.rcx, s.gpr[k_rcx]);
    EXPECT_EQ(r.rsp, s.gpr[k_rsp]);
    EXPECT_EQ(r.r15, s.gpr[k_r15]);
    CpuState back;
    regs_from_kvm(r, back);
    EXPECT_EQ(0, std::memcmp(back.gpr, s.gpr, sizeof s.gpr));
    EXPECT_EQ(back.rip, s.rip);
    EXPECT_EQ(back.rflags, s.rflags);
}

TEST(KvmSregs, RoundTripIncludingPendingInterrupt)
{
    CpuState s = sample_state();
    s.events.interrupt_injected = true;
    s.events.interrupt_vector = 0x81;
    kvm_sregs k;
    sregs_to_kvm(s, k);
    EXPECT_EQ(k.interrupt_bitmap[2], 1ull << 1); // vector 0x81 = word 2, bit 1
    EXPECT_EQ(k.apic_base, 0xfee00900u);
    CpuState back;
    sregs_from_kvm(k, back);
    EXPECT_TRUE(back.events.interrupt_injected);
    EXPECT_EQ(back.events.interrupt_vector, 0x81);
    EXPECT_EQ(back.cr0, s.cr0);
    EXPECT_EQ(back.cr2, s.cr2);
    EXPECT_EQ(back.cr3, s.cr3);
    EXPECT_EQ(back.cr4, s.cr4);
    EXPECT_EQ(back.cr8, s.cr8);
    EXPECT_EQ(back.efer, s.efer);
    EXPECT_EQ(back.gdtr.base, s.gdtr.base);
    EXPECT_EQ(back.idtr.limit, s.idtr.limit);
    EXPECT_EQ(back.segment(Seg::GS).base, s.segment(Seg::GS).base);
}

TEST(KvmEvents, ShadowBitsAreSwappedAndNmiStateKept)
{
    CpuState s;
    s.events.interrupt_shadow = PendingEvents::k_shadow_sti;
    s.events.nmi_pending = true;
    s.events.nmi_blocked = true;
    s.events.exception_pending = true;
    s.events.exception_vector = 14;
    s.events.exception_has_error_code = true;
    s.events.exception_error_code = 2;
    kvm_vcpu_events k;
    events_to_kvm(s, k);
    EXPECT_EQ(k.interrupt.shadow, KVM_X86_SHADOW_INT_STI);
    EXPECT_TRUE(k.flags & KVM_VCPUEVENT_VALID_SHADOW);
    EXPECT_TRUE(k.flags & KVM_VCPUEVENT_VALID_NMI_PENDING);
    EXPECT_EQ(k.exception.nr, 14);
    CpuState back;
    events_from_kvm(k, back);
    EXPECT_EQ(back.events.interrupt_shadow, PendingEvents::k_shadow_sti);
    EXPECT_TRUE(back.events.nmi_pending);
    EXPECT_TRUE(back.events.nmi_blocked);
    EXPECT_TRUE(back.events.exception_pending);
    EXPECT_EQ(back.events.exception_error_code, 2u);

    s.events.interrupt_shadow = PendingEvents::k_shadow_mov_ss;
    events_to_kvm(s, k);
    EXPECT_EQ(k.interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
}

TEST(KvmEvents, InjectedNmiComesBackAsPending)
{
    kvm_vcpu_events k {};
    k.nmi.injected = 1;
    CpuState s;
    events_from_kvm(k, s);
    EXPECT_TRUE(s.events.nmi_pending);
}

TEST(KvmDebugRegs, RoundTrip)
{
    CpuState s = sample_state();
    kvm_debugregs k;
    debugregs_to_kvm(s, k);
    CpuState back;
    debugregs_from_kvm(k, back);
    for (unsigned i : { 0u, 1u, 2u, 3u, 6u, 7u })
        EXPECT_EQ(back.dr[i], s.dr[i]) << "DR" << i;
}

TEST(KvmXsave, LegacyRegionIsFxsaveAndAvxAtOffset576)
{
    CpuState s;
    s.fpu.fcw = 0x37f;
    s.fpu.mxcsr = 0x1f80;
    s.fpu.xmm[3].q[0] = 0x0123456789abcdefull;
    s.fpu.st[7].q[0] = 0xc000000000000000ull;
    s.xsave.xcr0 = 7;
    s.xsave.xstate_bv = 7;
    s.xsave.ymm_hi[15].q[1] = 0xfeedfacecafebeefull;
    std::vector<uint8_t> area(k_xsave_min_bytes, 0xcc);
    xsave_to_kvm(s, area);
    uint16_t fcw;
    std::memcpy(&fcw, area.data(), 2);
    EXPECT_EQ(fcw, 0x37f);
    uint64_t xmm3;
    std::memcpy(&xmm3, area.data() + 160 + 3 * 16, 8);
    EXPECT_EQ(xmm3, 0x0123456789abcdefull);
    uint64_t bv;
    std::memcpy(&bv, area.data() + 512, 8);
    EXPECT_EQ(bv, 7u);
    uint64_t ymm15_hi;
    std::memcpy(&ymm15_hi, area.data() + 576 + 15 * 16 + 8, 8);
    EXPECT_EQ(ymm15_hi, 0xfeedfacecafebeefull);

    CpuState back;
    xsave_from_kvm(area, back);
    EXPECT_EQ(0, std::memcmp(&back.fpu, &s.fpu, sizeof s.fpu));
    EXPECT_EQ(back.xsave.ymm_hi[15].q[1], 0xfeedfacecafebeefull);
    EXPECT_EQ(back.xsave.xstate_bv, 7u);
}

TEST(KvmXsave, X87AndSseAlwaysMarkedInUse)
{
    CpuState s; // xstate_bv 0: the explicit values must still be loaded
    s.fpu.fcw = 0x27f;
    std::vector<uint8_t> area(k_xsave_min_bytes);
    xsave_to_kvm(s, area);
    uint64_t bv;
    std::memcpy(&bv, area.data() + 512, 8);
    EXPECT_EQ(bv & 3, 3u);
    EXPECT_EQ(bv & 4, 0u); // AVX is not enabled in XCR0
}

TEST(KvmXsave, AvxInInitStateReadsAsZero)
{
    std::vector<uint8_t> area(k_xsave_min_bytes, 0xaa);
    uint64_t bv = 3;
    std::memcpy(area.data() + 512, &bv, 8);
    CpuState s;
    xsave_from_kvm(area, s);
    EXPECT_EQ(s.xsave.ymm_hi[0].q[0], 0u);
}

TEST(KvmFpu, LegacyIoctlLayoutRoundTrip)
{
    CpuState s;
    s.fpu.fcw = 0x37f;
    s.fpu.fsw = 0x3800;
    s.fpu.ftw = 0x80;
    s.fpu.fop = 0x1d9;
    s.fpu.fip = 0x401000;
    s.fpu.fdp = 0x602000;
    s.fpu.mxcsr = 0x1fa0;
    s.fpu.st[0].q[0] = 0x8000000000000000ull;
    s.fpu.st[0].w[4] = 0x3fff;
    s.fpu.xmm[15].d[2] = 0x42;
    kvm_fpu k;
    fpu_to_kvm(s, k);
    EXPECT_EQ(k.ftwx, 0x80);
    CpuState back;
    fpu_from_kvm(k, back);
    back.fpu.mxcsr_mask = s.fpu.mxcsr_mask;
    EXPECT_EQ(0, std::memcmp(&back.fpu, &s.fpu, sizeof s.fpu));
}

TEST(KvmXcrs, Xcr0AlwaysHasX87)
{
    CpuState s;
    s.xsave.xcr0 = 0;
    kvm_xcrs k;
    xcrs_to_kvm(s, k);
    EXPECT_EQ(k.nr_xcrs, 1u);
    EXPECT_EQ(k.xcrs[0].value, 1u);
    k.xcrs[0].value = 7;
    xcrs_from_kvm(k, s);
    EXPECT_EQ(s.xsave.xcr0, 7u);
}

TEST(KvmDump, NamesTheRegisters)
{
    CpuState s = sample_state();
    std::string dump = format_cpu_state(s);
    EXPECT_NE(dump.find("RIP=ffffffff81000000"), std::string::npos) << dump;
    EXPECT_NE(dump.find("CR3=0000000001234000"), std::string::npos) << dump;
    EXPECT_NE(dump.find("EFER=0000000000000d01"), std::string::npos) << dump;
}

TEST(KvmMsrs, EveryCandidateHasItsOwnPlaceInCpuState)
{
    // A model with everything: SYSCALL/LM, RDTSCP, MTRR, IBRS, kvmclock.
    std::vector<CpuidEntry> sup = {
        { 1, 0, false, { 0, 0, 0, x86::k_cpuid1_edx_mtrr } },
        { 7, 0, true, { 0, 0, 0, 1u << 26 } },
        { 0x80000001, 0, false, { 0, 0, 0, x86::k_cpuidx1_edx_lm | x86::k_cpuidx1_edx_rdtscp } },
        { k_kvm_cpuid_features, 0, false, { k_kvm_feature_clocksource2, 0, 0, 0 } },
    };
    KvmCpuModel m = KvmCpuModel::host(sup);
    std::vector<uint32_t> msrs = candidate_msrs(m);
    EXPECT_EQ(msrs.size(),
        1u + 3 + 3 + 5 + 1 + 1 + 11 + 16 + 1
            + 1); // TSC, SYSENTER, MISC/PAT/MCG, SYSCALL, TSC_AUX, MTRRs, SPEC_CTRL, kvmclock
    CpuState s;
    std::set<uint64_t*> seen;
    for (uint32_t index : msrs) {
        uint64_t* f = msr_field(s, index);
        if (index == k_msr_tsc) {
            EXPECT_EQ(f, nullptr);
            continue;
        }
        ASSERT_NE(f, nullptr) << std::hex << index;
        EXPECT_TRUE(seen.insert(f).second) << "two MSRs share a field: " << std::hex << index;
        EXPECT_STRNE(msr_name(index), "");
    }
    EXPECT_EQ(msr_field(s, 0x4b564d00), nullptr); // the wall-clock MSR is never transferred

    KvmCpuModel bare = KvmCpuModel::host({});
    std::vector<uint32_t> few = candidate_msrs(bare);
    EXPECT_EQ(few.size(), 7u); // TSC, SYSENTER x3, MISC_ENABLE, PAT, MCG_STATUS
}

} // namespace
} // namespace kiln::accel::kvm
