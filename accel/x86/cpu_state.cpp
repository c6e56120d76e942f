#include "accel/x86/cpu_state.h"

namespace kiln::accel::x86 {

void reset_cpu_state(CpuState& state, ResetKind kind, uint32_t cpuid_signature, bool bsp)
{
    // INIT keeps the FPU/SSE state, MTRRs and the machine-check MSRs.
    FxsaveArea fpu = state.fpu;
    XsaveExtended xsave = state.xsave;
    Msrs kept = state.msr;
    uint32_t apic_id = state.apic_id;

    state = CpuState {};
    state.apic_id = apic_id;
    state.rip = 0xfff0;
    state.rflags = k_flag_fixed1;
    state.gpr[k_rdx] = cpuid_signature;

    for (auto& s : state.seg) {
        s.selector = 0;
        s.base = 0;
        s.limit = 0xffff;
        s.attr = k_seg_p | k_seg_s | 0x3; // read/write data, accessed
    }
    SegmentCache& cs = state.segment(Seg::CS);
    cs.selector = 0xf000;
    cs.base = 0xffff0000;
    cs.attr = k_seg_p | k_seg_s | 0xb; // execute/read code, accessed

    state.gdtr = { 0, 0xffff };
    state.idtr = { 0, 0xffff };
    state.ldtr = { 0, k_seg_p | 0x2, 0xffff, 0 };
    state.tr = { 0, k_seg_p | 0xb, 0xffff, 0 }; // busy 32-bit TSS

    state.cr0 = k_cr0_et | k_cr0_cd | k_cr0_nw;
    state.dr[6] = 0xffff0ff0;
    state.dr[7] = 0x400;

    state.msr.apic_base = 0xfee00000ull | (1u << 11) | (bsp ? (1u << 8) : 0);
    state.msr.misc_enable = 1; // fast strings

    if (kind == ResetKind::Init) {
        state.fpu = fpu;
        state.xsave = xsave;
        state.msr.mtrr_def_type = kept.mtrr_def_type;
        for (unsigned i = 0; i < k_mtrr_fixed_count; i++)
            state.msr.mtrr_fixed[i] = kept.mtrr_fixed[i];
        for (unsigned i = 0; i < k_mtrr_var_count; i++) {
            state.msr.mtrr_var_base[i] = kept.mtrr_var_base[i];
            state.msr.mtrr_var_mask[i] = kept.mtrr_var_mask[i];
        }
        state.msr.tsc_offset = kept.tsc_offset;
        state.msr.apic_base = (kept.apic_base & ~(1ull << 8)) | (bsp ? (1u << 8) : 0);
        return;
    }
    state.fpu.fcw = 0x0040;
    state.fpu.ftw = 0; // all empty (abridged format)
    state.fpu.mxcsr = 0x1f80;
    state.fpu.mxcsr_mask = 0xffff;
    state.xsave.xcr0 = 1;
}

} // namespace kiln::accel::x86
