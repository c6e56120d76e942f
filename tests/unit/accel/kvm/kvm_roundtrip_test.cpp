// State round trips through KVM: set_state -> get_state gives back the
// same CpuState for real-mode, protected-mode and long-mode CPUs.
#include <cstdio>
#include <cstring>

#include <gtest/gtest.h>

#include "accel/kvm/kvm_msrs.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

namespace x86 = accel::x86;
using namespace x86;
using accel::kvm::KvmVcpu;

void expect_segment_eq(const SegmentCache& a, const SegmentCache& b, const char* what)
{
    EXPECT_EQ(a.selector, b.selector) << what;
    EXPECT_EQ(a.base, b.base) << what;
    EXPECT_EQ(a.limit, b.limit) << what;
    EXPECT_EQ(a.attr, b.attr) << what;
}

// Everything KVM carries must come back bit for bit; MSRs only as far as
// this KVM lets the vCPU transfer them, the TSC within the time it ran on.
enum class TscCheck { Compare, Skip };

void expect_state_eq(
    const CpuState& want, const CpuState& got, const KvmVcpu& vcpu, TscCheck tsc_check = TscCheck::Compare)
{
    for (unsigned i = 0; i < k_gpr_count; i++)
        EXPECT_EQ(want.gpr[i], got.gpr[i]) << "GPR " << i;
    EXPECT_EQ(want.rip, got.rip);
    EXPECT_EQ(want.rflags, got.rflags);
    static const char* names[] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    for (unsigned i = 0; i < k_seg_count; i++)
        expect_segment_eq(want.seg[i], got.seg[i], names[i]);
    expect_segment_eq(want.ldtr, got.ldtr, "LDTR");
    expect_segment_eq(want.tr, got.tr, "TR");
    EXPECT_EQ(want.gdtr.base, got.gdtr.base);
    EXPECT_EQ(want.gdtr.limit, got.gdtr.limit);
    EXPECT_EQ(want.idtr.base, got.idtr.base);
    EXPECT_EQ(want.idtr.limit, got.idtr.limit);
    EXPECT_EQ(want.cr0, got.cr0);
    EXPECT_EQ(want.cr2, got.cr2);
    EXPECT_EQ(want.cr3, got.cr3);
    EXPECT_EQ(want.cr4, got.cr4);
    EXPECT_EQ(want.cr8, got.cr8);
    EXPECT_EQ(want.efer, got.efer);
    EXPECT_EQ(want.msr.apic_base, got.msr.apic_base);
    for (unsigned i : { 0u, 1u, 2u, 3u, 6u, 7u })
        EXPECT_EQ(want.dr[i], got.dr[i]) << "DR" << i;

    const FxsaveArea& a = want.fpu;
    const FxsaveArea& b = got.fpu;
    EXPECT_EQ(a.fcw, b.fcw);
    EXPECT_EQ(a.fsw, b.fsw);
    EXPECT_EQ(a.ftw, b.ftw);
    EXPECT_EQ(a.fop, b.fop);
    EXPECT_EQ(a.fip, b.fip);
    EXPECT_EQ(a.fdp, b.fdp);
    EXPECT_EQ(a.mxcsr, b.mxcsr);
    for (unsigned i = 0; i < 8; i++)
        EXPECT_EQ(0, std::memcmp(a.st[i].b, b.st[i].b, 10)) << "ST" << i;
    for (unsigned i = 0; i < 16; i++)
        EXPECT_EQ(0, std::memcmp(a.xmm[i].b, b.xmm[i].b, 16)) << "XMM" << i;
    if (vcpu.uses_xsave()) {
        EXPECT_EQ(want.xsave.xcr0, got.xsave.xcr0);
        if (want.xsave.xcr0 & 4) {
            for (unsigned i = 0; i < 16; i++)
                EXPECT_EQ(0, std::memcmp(want.xsave.ymm_hi[i].b, got.xsave.ymm_hi[i].b, 16)) << "YMM_HI" << i;
        }
    }

    CpuState w = want, g = got;
    for (uint32_t index : vcpu.msrs()) {
        if (index == accel::kvm::k_msr_tsc) {
            if (tsc_check == TscCheck::Skip)
                continue;
            // The TSC kept running between the write and the read.
            EXPECT_GE(got.msr.tsc_offset, want.msr.tsc_offset);
            // At KVM's rate: at most a minute's worth (the offset counts ns,
            // the TSC ticks at tsc_khz).
            EXPECT_LT(got.msr.tsc_offset - want.msr.tsc_offset, int64_t(vcpu.tsc_khz() * 1000 * 60));
            continue;
        }
        EXPECT_EQ(*accel::kvm::msr_field(w, index), *accel::kvm::msr_field(g, index))
            << accel::kvm::msr_name(index) << " (0x" << std::hex << index << ")";
    }

    const PendingEvents& ea = want.events;
    const PendingEvents& eb = got.events;
    EXPECT_EQ(ea.exception_pending, eb.exception_pending);
    EXPECT_EQ(ea.exception_vector, eb.exception_vector);
    EXPECT_EQ(ea.exception_has_error_code, eb.exception_has_error_code);
    EXPECT_EQ(ea.exception_error_code, eb.exception_error_code);
    EXPECT_EQ(ea.interrupt_injected, eb.interrupt_injected);
    EXPECT_EQ(ea.interrupt_vector, eb.interrupt_vector);
    EXPECT_EQ(ea.nmi_pending, eb.nmi_pending);
    EXPECT_EQ(ea.nmi_blocked, eb.nmi_blocked);
    EXPECT_EQ(ea.interrupt_shadow, eb.interrupt_shadow);
    EXPECT_EQ(want.halted, got.halted);
}

void fill_common(CpuState& s)
{
    for (unsigned i = 0; i < k_gpr_count; i++)
        s.gpr[i] = 0x0101010101010101ull * (i + 1) + 0x10 * i;
    s.cr2 = 0xbad000;
    s.dr[0] = 0x1000;
    s.dr[1] = 0x2000;
    s.dr[2] = 0x3000;
    s.dr[3] = 0x4000;
    s.dr[6] = 0xffff0ff1; // B0 set, reserved bits as the CPU reads them
    s.dr[7] = 0x00000402; // G0
    s.fpu.fcw = 0x037f;
    s.fpu.fsw = 0x3800; // TOP = 7
    s.fpu.ftw = 0x80; // physical register 7 valid
    s.fpu.fop = 0x0d9;
    s.fpu.mxcsr = 0x1fa0; // masks + PE
    std::memcpy(s.fpu.st[0].b, "\x00\x00\x00\x00\x00\x00\x00\x80\xff\x3f", 10); // 1.0
    for (unsigned i = 0; i < 16; i++)
        for (unsigned j = 0; j < 4; j++)
            s.fpu.xmm[i].d[j] = 0x11111111u * (j + 1) + i;
    s.msr.sysenter_cs = 0x10;
    s.msr.sysenter_esp = 0xc0001000;
    s.msr.sysenter_eip = 0xc0002000;
    s.msr.pat = 0x0007040600070406ull;
    s.msr.misc_enable = 1;
    s.msr.mtrr_def_type = 0xc06;
    for (unsigned i = 0; i < k_mtrr_fixed_count; i++)
        s.msr.mtrr_fixed[i] = 0x0606060606060606ull;
    s.msr.mtrr_var_base[0] = 0x80000000ull | 0x0;
    s.msr.mtrr_var_mask[0] = 0xff80000000ull | 0x800;
    s.msr.tsc_offset = 123456789;
    s.msr.kvm_system_time = 0x7000; // kvmclock structure address, not enabled
}

struct RoundTripGuest {
    KvmGuest guest;
    bool ok = false;
};

RoundTripGuest make_guest(const std::string& cpu)
{
    RoundTripGuest r;
    auto g = make_kvm_guest(make_payload_host(payload("real_mode_pio")), cpu);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message());
    if (!g.ok())
        return r;
    r.guest = std::move(g).value();
    r.ok = true;
    const KvmVcpu& v = *r.guest.vcpu;
    std::printf("[ info ] -cpu %s: FPU via %s, %zu MSRs transferred\n", cpu.c_str(),
        v.uses_xsave() ? "XSAVE" : "KVM_GET/SET_FPU", v.msrs().size());
    std::string names;
    for (uint32_t m : v.msrs())
        names += std::string(" ") + accel::kvm::msr_name(m);
    std::printf("[ info ] MSRs:%s\n", names.c_str());
    return r;
}

void round_trip(KvmVcpu& vcpu, const CpuState& s)
{
    auto set = vcpu.set_state(s);
    ASSERT_TRUE(set.ok()) << set.error().message();
    auto got = vcpu.get_state();
    ASSERT_TRUE(got.ok()) << got.error().message();
    expect_state_eq(s, *got, vcpu);
}

TEST(KvmRoundTrip, RealMode)
{
    KILN_REQUIRE_KVM();
    RoundTripGuest g = make_guest("qemu64");
    ASSERT_TRUE(g.ok);
    CpuState s = real_mode_state(0x1234);
    fill_common(s);
    s.segment(Seg::DS) = { 0x1234, uint16_t(k_seg_p | k_seg_s | 0x3), 0xffff, 0x12340 };
    s.segment(Seg::ES) = { 0xb800, uint16_t(k_seg_p | k_seg_s | 0x3), 0xffff, 0xb8000 };
    s.rflags = k_flag_fixed1 | k_flag_cf | k_flag_df;
    s.events.interrupt_injected = true;
    s.events.interrupt_vector = 0x08;
    round_trip(*g.guest.vcpu, s);
}

TEST(KvmRoundTrip, ProtectedMode)
{
    KILN_REQUIRE_KVM();
    RoundTripGuest g = make_guest("qemu64");
    ASSERT_TRUE(g.ok);
    CpuState s = flat_protected_mode_state(0xc0100000);
    fill_common(s);
    s.cr0 |= k_cr0_pg | k_cr0_wp | k_cr0_ne | k_cr0_mp;
    s.cr3 = 0x1000;
    s.cr4 = k_cr4_pse | k_cr4_pge | k_cr4_osfxsr | k_cr4_osxmmexcpt;
    s.rflags = k_flag_fixed1 | k_flag_if | k_flag_zf;
    s.segment(Seg::FS) = { 0x0, 0, 0, 0 }; // null selector: unusable
    s.segment(Seg::GS) = { 0x33, uint16_t(k_seg_g | k_seg_db | k_seg_p | k_seg_s | (3 << k_seg_dpl_shift) | 0x3),
        0xfffff, 0x00400000 };
    s.tr = { 0x28, uint16_t(k_seg_p | 0xb), 0x67, 0x5000 };
    s.ldtr = { 0x30, uint16_t(k_seg_p | 0x2), 0x17, 0x5100 };
    s.events.interrupt_shadow = PendingEvents::k_shadow_sti;
    s.events.nmi_pending = true;
    s.events.nmi_blocked = true;
    round_trip(*g.guest.vcpu, s);
}

TEST(KvmRoundTrip, LongModeWithHostCpu)
{
    KILN_REQUIRE_KVM();
    RoundTripGuest g = make_guest("host");
    ASSERT_TRUE(g.ok);
    CpuState s = flat_protected_mode_state(0);
    fill_common(s);
    s.rip = 0xffffffff81000123ull;
    s.cr0 = k_cr0_pe | k_cr0_mp | k_cr0_et | k_cr0_ne | k_cr0_wp | k_cr0_pg;
    s.cr3 = 0x2000;
    s.cr4 = k_cr4_pae | k_cr4_pge | k_cr4_osfxsr | k_cr4_osxmmexcpt;
    s.cr8 = 5;
    s.efer = k_efer_sce | k_efer_lme | k_efer_lma | k_efer_nxe;
    s.rflags = k_flag_fixed1 | k_flag_if | k_flag_sf;
    s.segment(Seg::CS) = { 0x10, uint16_t(k_seg_l | k_seg_p | k_seg_s | 0xb), 0xffffffff, 0 };
    s.segment(Seg::SS) = { 0x18, uint16_t(k_seg_g | k_seg_db | k_seg_p | k_seg_s | 0x3), 0xffffffff, 0 };
    s.segment(Seg::DS) = { 0, 0, 0, 0 };
    s.segment(Seg::ES) = { 0, 0, 0, 0 };
    s.segment(Seg::FS) = { 0, 0, 0, 0x7f0012340000ull }; // base from WRFSBASE/MSR: kept while unusable
    s.segment(Seg::GS) = { 0, 0, 0, 0xffff888012345000ull };
    s.tr = { 0x40, uint16_t(k_seg_p | 0xb), 0x206f, 0xfffffe0000003000ull };
    s.ldtr = { 0, 0, 0, 0 };
    s.gdtr = { 0xfffffe0000001000ull, 0x7f };
    s.idtr = { 0xfffffe0000000000ull, 0xfff };
    s.msr.star = 0x0023001000000000ull;
    s.msr.lstar = 0xffffffff81800000ull;
    s.msr.cstar = 0xffffffff81801000ull;
    s.msr.sfmask = 0x47700;
    s.msr.kernel_gs_base = 0x7f00aaaa0000ull;
    s.msr.tsc_aux = 1;
    s.events.exception_pending = true;
    s.events.exception_vector = 14;
    s.events.exception_has_error_code = true;
    s.events.exception_error_code = 0x6;
    s.cr2 = 0x7f0000001000ull;
    if (g.guest.vcpu->uses_xsave()) {
        const auto* xs = g.guest.vcpu->model().find(0xd, 0);
        std::printf("[ info ] host XCR0 mask %#x: %s\n", xs ? xs->regs.eax : 0,
            xs && (xs->regs.eax & 4) ? "AVX upper halves round-tripped" : "no AVX");
        if (xs && (xs->regs.eax & 4)) {
            s.cr4 |= k_cr4_osxsave;
            s.xsave.xcr0 = 7;
            s.xsave.xstate_bv = 7;
            for (unsigned i = 0; i < 16; i++)
                s.xsave.ymm_hi[i].q[0] = 0xa5a5a5a500000000ull | i;
        }
    }
    round_trip(*g.guest.vcpu, s);
}

TEST(KvmRoundTrip, StateSurvivesARunThatDoesNotTouchIt)
{
    KILN_REQUIRE_KVM();
    // 1000: hlt. Everything but RIP (and halted) must come back unchanged.
    RoundTripGuest g = make_guest("qemu64");
    ASSERT_TRUE(g.ok);
    uint8_t hlt = 0xf4;
    ASSERT_TRUE(g.guest.host->memory().write(0x1000, &hlt, 1).ok());
    CpuState s = real_mode_state(0x1000);
    fill_common(s);
    s.gpr[k_rsp] = 0x8000;
    s.dr[7] = 0x400; // no breakpoint on the HLT at DR0 = 0x1000
    ASSERT_TRUE(g.guest.vcpu->set_state(s).ok());
    TimedRun r = run_with_limit(*g.guest.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    auto got = g.guest.vcpu->get_state();
    ASSERT_TRUE(got.ok());
    s.rip = 0x1001;
    s.halted = true;
    // The nested KVM of Kiln's build machine (kvm_pvm) runs the guest on
    // the host's TSC and drops the offset written before entry, so the TSC
    // is only compared for the set -> get round trips above.
    expect_state_eq(s, *got, *g.guest.vcpu, TscCheck::Skip);
}

} // namespace
} // namespace kiln::test
