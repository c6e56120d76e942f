// Control registers, EFER and the other MSRs, and the TSC.
#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

constexpr uint64_t k_cr0_writable = k_cr0_pe | k_cr0_mp | k_cr0_em | k_cr0_ts | k_cr0_et | k_cr0_ne | k_cr0_wp
    | k_cr0_am | k_cr0_nw | k_cr0_cd | k_cr0_pg;

enum Msr : uint32_t {
    k_msr_tsc = 0x10,
    k_msr_platform_id = 0x17,
    k_msr_apic_base = 0x1b,
    k_msr_feature_control = 0x3a,
    k_msr_tsc_adjust = 0x3b,
    k_msr_spec_ctrl = 0x48,
    k_msr_pred_cmd = 0x49,
    k_msr_bios_sign_id = 0x8b,
    k_msr_mtrrcap = 0xfe,
    k_msr_sysenter_cs = 0x174,
    k_msr_sysenter_esp = 0x175,
    k_msr_sysenter_eip = 0x176,
    k_msr_mcg_cap = 0x179,
    k_msr_mcg_status = 0x17a,
    k_msr_misc_enable = 0x1a0,
    k_msr_mtrr_var_first = 0x200,
    k_msr_mtrr_var_last = 0x20f,
    k_msr_mtrr_fix64k = 0x250,
    k_msr_mtrr_fix16k_80000 = 0x258,
    k_msr_mtrr_fix16k_a0000 = 0x259,
    k_msr_mtrr_fix4k_first = 0x268,
    k_msr_mtrr_fix4k_last = 0x26f,
    k_msr_pat = 0x277,
    k_msr_mtrr_def_type = 0x2ff,
    k_msr_tsc_deadline = 0x6e0,
    k_msr_efer = 0xc0000080,
    k_msr_star = 0xc0000081,
    k_msr_lstar = 0xc0000082,
    k_msr_cstar = 0xc0000083,
    k_msr_sfmask = 0xc0000084,
    k_msr_fs_base = 0xc0000100,
    k_msr_gs_base = 0xc0000101,
    k_msr_kernel_gs_base = 0xc0000102,
    k_msr_tsc_aux = 0xc0000103,
};

bool canonical(uint64_t v) { return uint64_t(int64_t(v << 16) >> 16) == v; }

// AMD model-specific MSRs Linux touches on AMD-vendor models (qemu64):
// SYSCFG, HWCR, NB_CFG, VM_CR, VM_HSAVE_PA, LS_CFG..DE_CFG.
bool amd_model_msr(uint32_t index)
{
    switch (index) {
    case 0xc0010010:
    case 0xc0010015:
    case 0xc001001f:
    case 0xc0010114:
    case 0xc0010117:
    case 0xc0011020:
    case 0xc0011021:
    case 0xc0011022:
    case 0xc0011023:
    case 0xc0011029:
        return true;
    default:
        return false;
    }
}

// Index into Msrs::mtrr_fixed for the 11 fixed-range MTRRs.
int fixed_mtrr_index(uint32_t msr)
{
    if (msr == k_msr_mtrr_fix64k)
        return 0;
    if (msr == k_msr_mtrr_fix16k_80000)
        return 1;
    if (msr == k_msr_mtrr_fix16k_a0000)
        return 2;
    if (msr >= k_msr_mtrr_fix4k_first && msr <= k_msr_mtrr_fix4k_last)
        return 3 + int(msr - k_msr_mtrr_fix4k_first);
    return -1;
}

} // namespace

void InterpreterImpl::write_cr0(uint64_t v)
{
    if (v >> 32)
        raise_gp0();
    v = (v & k_cr0_writable) | k_cr0_et;
    if ((v & k_cr0_pg) && !(v & k_cr0_pe))
        raise_gp0();
    if ((v & k_cr0_nw) && !(v & k_cr0_cd))
        raise_gp0();
    uint64_t old = m_s.cr0;
    if ((v & k_cr0_pg) && !(old & k_cr0_pg) && (m_s.efer & k_efer_lme)) {
        if (!(m_s.cr4 & k_cr4_pae))
            raise_gp0();
        if (m_s.segment(Seg::CS).attr & k_seg_l)
            raise_gp0();
        m_s.efer |= k_efer_lma;
    }
    if (!(v & k_cr0_pg) && (old & k_cr0_pg) && m_s.long_mode_active()) {
        if (m_mode64 || (m_s.cr4 & k_cr4_pcide))
            raise_gp0();
        m_s.efer &= ~k_efer_lma;
    }
    m_s.cr0 = v;
    if ((old ^ v) & (k_cr0_pg | k_cr0_wp | k_cr0_pe))
        flush_tlb(true);
    update_mode();
    end_block();
}

void InterpreterImpl::write_cr3(uint64_t v)
{
    // With CR4.PCIDE, bits 11:0 are the PCID and bit 63 asks not to flush
    // that PCID's translations; it is not stored. The TLB is not tagged by
    // PCID, so every CR3 write flushes the non-global entries anyway.
    if (m_s.cr4 & k_cr4_pcide)
        v &= ~(1ull << 63);
    if (m_s.long_mode_active()) {
        if (v >> m_model.phys_addr_bits())
            raise_gp0();
    } else {
        v &= 0xffffffff;
    }
    m_s.cr3 = v;
    flush_tlb(false);
    end_block();
}

void InterpreterImpl::write_cr4(uint64_t v)
{
    uint64_t allowed = k_cr4_vme | k_cr4_pvi | k_cr4_tsd | k_cr4_de | k_cr4_pse | k_cr4_pae | k_cr4_mce | k_cr4_pge
        | k_cr4_pce | k_cr4_osfxsr | k_cr4_osxmmexcpt;
    if (m_model.has_smep())
        allowed |= k_cr4_smep;
    if (m_model.has_smap())
        allowed |= k_cr4_smap;
    if (m_model.has_xsave())
        allowed |= k_cr4_osxsave;
    if (m_model.has_pcid())
        allowed |= k_cr4_pcide;
    if (v & ~allowed)
        raise_gp0();
    if (m_s.long_mode_active() && !(v & k_cr4_pae))
        raise_gp0();
    uint64_t old = m_s.cr4;
    // PCIDE may be set only in IA-32e mode with PCID 0 in CR3.
    if ((v & ~old & k_cr4_pcide) && (!m_s.long_mode_active() || (m_s.cr3 & 0xfff)))
        raise_gp0();
    m_s.cr4 = v;
    if ((old ^ v) & (k_cr4_pae | k_cr4_pge | k_cr4_pse | k_cr4_smep | k_cr4_smap | k_cr4_pcide))
        flush_tlb(true);
    if ((old ^ v) & k_cr4_de)
        update_debug_state(); // I/O breakpoints exist only with CR4.DE
    end_block();
}

void InterpreterImpl::write_efer(uint64_t v)
{
    uint64_t allowed = k_efer_sce | k_efer_lme | k_efer_lma;
    if (m_model.has_nx())
        allowed |= k_efer_nxe;
    if (v & ~allowed)
        raise_gp0();
    if (((v ^ m_s.efer) & k_efer_lme) && m_s.paging())
        raise_gp0();
    uint64_t old = m_s.efer;
    m_s.efer = (v & ~k_efer_lma) | (old & k_efer_lma);
    if ((old ^ m_s.efer) & k_efer_nxe)
        flush_tlb(true);
}

uint64_t InterpreterImpl::read_tsc()
{
    // The TSC runs at 1 GHz of virtual time: one tick per nanosecond.
    return m_host.virtual_clock_ns() + uint64_t(m_s.msr.tsc_offset);
}

bool InterpreterImpl::read_msr(uint32_t index, uint64_t& v)
{
    Msrs& m = m_s.msr;
    switch (index) {
    case k_msr_tsc:
        v = read_tsc();
        return true;
    case k_msr_platform_id:
        v = 0;
        return true;
    case k_msr_apic_base:
        v = m.apic_base;
        return true;
    case k_msr_feature_control:
        v = 1;
        return true; // locked, VMX off
    case k_msr_spec_ctrl:
        v = m.spec_ctrl;
        return true;
    case k_msr_bios_sign_id:
        v = 0;
        return true;
    case k_msr_mtrrcap:
        v = k_mtrr_var_count | (1u << 8) | (1u << 10);
        return true;
    case k_msr_sysenter_cs:
        v = m.sysenter_cs;
        return true;
    case k_msr_sysenter_esp:
        v = m.sysenter_esp;
        return true;
    case k_msr_sysenter_eip:
        v = m.sysenter_eip;
        return true;
    case k_msr_mcg_cap:
        v = 0;
        return true;
    case k_msr_mcg_status:
        v = m.mcg_status;
        return true;
    case k_msr_misc_enable:
        v = m.misc_enable;
        return true;
    case k_msr_pat:
        v = m.pat;
        return true;
    case k_msr_mtrr_def_type:
        v = m.mtrr_def_type;
        return true;
    case k_msr_tsc_deadline:
        v = m.tsc_deadline;
        return true;
    case k_msr_efer:
        v = m_s.efer;
        return true;
    case k_msr_star:
        v = m.star;
        return true;
    case k_msr_lstar:
        v = m.lstar;
        return true;
    case k_msr_cstar:
        v = m.cstar;
        return true;
    case k_msr_sfmask:
        v = m.sfmask;
        return true;
    case k_msr_fs_base:
        v = m_s.segment(Seg::FS).base;
        return true;
    case k_msr_gs_base:
        v = m_s.segment(Seg::GS).base;
        return true;
    case k_msr_kernel_gs_base:
        v = m.kernel_gs_base;
        return true;
    case k_msr_tsc_aux:
        v = m.tsc_aux;
        return true;
    default:
        break;
    }
    if (index >= k_msr_mtrr_var_first && index <= k_msr_mtrr_var_last) {
        unsigned i = (index - k_msr_mtrr_var_first) / 2;
        v = (index & 1) ? m.mtrr_var_mask[i] : m.mtrr_var_base[i];
        return true;
    }
    if (amd_model_msr(index)) {
        // DE_CFG reports LFENCE as dispatch-serialising; the others read 0.
        v = index == 0xc0011029 ? 2 : 0;
        return true;
    }
    if (int i = fixed_mtrr_index(index); i >= 0) {
        v = m.mtrr_fixed[i];
        return true;
    }
    return false;
}

bool InterpreterImpl::write_msr(uint32_t index, uint64_t v)
{
    Msrs& m = m_s.msr;
    switch (index) {
    case k_msr_tsc:
        m.tsc_offset = int64_t(v - m_host.virtual_clock_ns());
        return true;
    case k_msr_apic_base:
        // The APIC device follows APIC_BASE through the board; only the
        // architectural bits are kept here.
        m.apic_base = (v & ~0x6ffull) | (m.apic_base & (1u << 8));
        return true;
    case k_msr_spec_ctrl:
        m.spec_ctrl = v;
        return true;
    case k_msr_pred_cmd:
        return true;
    case k_msr_bios_sign_id:
        return true;
    case k_msr_sysenter_cs:
        m.sysenter_cs = v & 0xffff;
        return true;
    case k_msr_sysenter_esp:
        if (!canonical(v))
            return false;
        m.sysenter_esp = v;
        return true;
    case k_msr_sysenter_eip:
        if (!canonical(v))
            return false;
        m.sysenter_eip = v;
        return true;
    case k_msr_mcg_status:
        m.mcg_status = v;
        return true;
    case k_msr_misc_enable:
        m.misc_enable = v;
        return true;
    case k_msr_pat:
        m.pat = v;
        return true;
    case k_msr_mtrr_def_type:
        m.mtrr_def_type = v & 0xcff;
        return true;
    case k_msr_tsc_deadline:
        m.tsc_deadline = v;
        return true;
    case k_msr_efer:
        write_efer(v);
        return true;
    case k_msr_star:
        m.star = v;
        return true;
    case k_msr_lstar:
    case k_msr_cstar:
    case k_msr_fs_base:
    case k_msr_gs_base:
    case k_msr_kernel_gs_base:
        if (!canonical(v))
            return false;
        if (index == k_msr_lstar)
            m.lstar = v;
        else if (index == k_msr_cstar)
            m.cstar = v;
        else if (index == k_msr_fs_base)
            m_s.segment(Seg::FS).base = v;
        else if (index == k_msr_gs_base)
            m_s.segment(Seg::GS).base = v;
        else
            m.kernel_gs_base = v;
        return true;
    case k_msr_sfmask:
        m.sfmask = v & 0xffffffff;
        return true;
    case k_msr_tsc_aux:
        m.tsc_aux = v & 0xffffffff;
        return true;
    default:
        break;
    }
    if (index >= k_msr_mtrr_var_first && index <= k_msr_mtrr_var_last) {
        unsigned i = (index - k_msr_mtrr_var_first) / 2;
        ((index & 1) ? m.mtrr_var_mask[i] : m.mtrr_var_base[i]) = v;
        return true;
    }
    if (amd_model_msr(index))
        return true; // accepted and ignored, as KVM does
    if (int i = fixed_mtrr_index(index); i >= 0) {
        m.mtrr_fixed[i] = v;
        return true;
    }
    return false;
}

} // namespace kiln::accel::interp
