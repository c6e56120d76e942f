// CpuState: the whole architectural state of one x86-64 logical CPU.
//
// Both accelerators work on this one structure: the interpreter executes on
// it directly, KVM converts it to and from its ioctls, and migration saves
// it. A VM saved under one accelerator therefore resumes under the other.
// Everything here is guest-visible state (or state the CPU keeps hidden but
// must carry across a save, such as segment descriptor caches and pending
// events); accelerator-private caches (TLBs, decoded code, lazy flags) live
// in the accelerator and are folded back in before anyone else reads this.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::accel::x86 {

// General-purpose register numbers, as ModRM/REX encode them.
enum Gpr : unsigned {
    k_rax,
    k_rcx,
    k_rdx,
    k_rbx,
    k_rsp,
    k_rbp,
    k_rsi,
    k_rdi,
    k_r8,
    k_r9,
    k_r10,
    k_r11,
    k_r12,
    k_r13,
    k_r14,
    k_r15,
};
inline constexpr unsigned k_gpr_count = 16;

// Segment registers, in the order the sreg field of ModRM encodes them.
enum class Seg : unsigned { ES, CS, SS, DS, FS, GS };
inline constexpr unsigned k_seg_count = 6;

// RFLAGS bits.
inline constexpr uint64_t k_flag_cf = 1u << 0;
inline constexpr uint64_t k_flag_fixed1 = 1u << 1; // always reads as 1
inline constexpr uint64_t k_flag_pf = 1u << 2;
inline constexpr uint64_t k_flag_af = 1u << 4;
inline constexpr uint64_t k_flag_zf = 1u << 6;
inline constexpr uint64_t k_flag_sf = 1u << 7;
inline constexpr uint64_t k_flag_tf = 1u << 8;
inline constexpr uint64_t k_flag_if = 1u << 9;
inline constexpr uint64_t k_flag_df = 1u << 10;
inline constexpr uint64_t k_flag_of = 1u << 11;
inline constexpr uint64_t k_flag_iopl = 3u << 12;
inline constexpr uint64_t k_flag_nt = 1u << 14;
inline constexpr uint64_t k_flag_rf = 1u << 16;
inline constexpr uint64_t k_flag_vm = 1u << 17;
inline constexpr uint64_t k_flag_ac = 1u << 18;
inline constexpr uint64_t k_flag_vif = 1u << 19;
inline constexpr uint64_t k_flag_vip = 1u << 20;
inline constexpr uint64_t k_flag_id = 1u << 21;
inline constexpr uint64_t k_flags_arith = k_flag_cf | k_flag_pf | k_flag_af | k_flag_zf | k_flag_sf | k_flag_of;

// Control register bits the accelerators test.
inline constexpr uint64_t k_cr0_pe = 1u << 0;
inline constexpr uint64_t k_cr0_mp = 1u << 1;
inline constexpr uint64_t k_cr0_em = 1u << 2;
inline constexpr uint64_t k_cr0_ts = 1u << 3;
inline constexpr uint64_t k_cr0_et = 1u << 4;
inline constexpr uint64_t k_cr0_ne = 1u << 5;
inline constexpr uint64_t k_cr0_wp = 1u << 16;
inline constexpr uint64_t k_cr0_am = 1u << 18;
inline constexpr uint64_t k_cr0_nw = 1u << 29;
inline constexpr uint64_t k_cr0_cd = 1u << 30;
inline constexpr uint64_t k_cr0_pg = 1u << 31;
inline constexpr uint64_t k_cr4_vme = 1u << 0;
inline constexpr uint64_t k_cr4_pvi = 1u << 1;
inline constexpr uint64_t k_cr4_tsd = 1u << 2;
inline constexpr uint64_t k_cr4_de = 1u << 3;
inline constexpr uint64_t k_cr4_pse = 1u << 4;
inline constexpr uint64_t k_cr4_pae = 1u << 5;
inline constexpr uint64_t k_cr4_mce = 1u << 6;
inline constexpr uint64_t k_cr4_pge = 1u << 7;
inline constexpr uint64_t k_cr4_pce = 1u << 8;
inline constexpr uint64_t k_cr4_osfxsr = 1u << 9;
inline constexpr uint64_t k_cr4_osxmmexcpt = 1u << 10;
inline constexpr uint64_t k_cr4_umip = 1u << 11;
inline constexpr uint64_t k_cr4_fsgsbase = 1u << 16;
inline constexpr uint64_t k_cr4_pcide = 1u << 17;
inline constexpr uint64_t k_cr4_osxsave = 1u << 18;
inline constexpr uint64_t k_cr4_smep = 1u << 20;
inline constexpr uint64_t k_cr4_smap = 1u << 21;
inline constexpr uint64_t k_efer_sce = 1u << 0;
inline constexpr uint64_t k_efer_lme = 1u << 8;
inline constexpr uint64_t k_efer_lma = 1u << 10;
inline constexpr uint64_t k_efer_nxe = 1u << 11;

// Segment attribute bits, in the layout of VMX "access rights": bits 0-7
// are descriptor bits 40-47 (type, S, DPL, P) and bits 12-15 are descriptor
// bits 52-55 (AVL, L, D/B, G). KVM's kvm_segment maps onto it field by field.
inline constexpr uint16_t k_seg_type_mask = 0x000f;
inline constexpr uint16_t k_seg_accessed = 0x0001;
inline constexpr uint16_t k_seg_s = 0x0010; // code/data (not system)
inline constexpr uint16_t k_seg_dpl_mask = 0x0060;
inline constexpr unsigned k_seg_dpl_shift = 5;
inline constexpr uint16_t k_seg_p = 0x0080;
inline constexpr uint16_t k_seg_avl = 0x1000;
inline constexpr uint16_t k_seg_l = 0x2000;
inline constexpr uint16_t k_seg_db = 0x4000;
inline constexpr uint16_t k_seg_g = 0x8000;

// A segment register with its hidden descriptor cache. `limit` is the
// effective byte-granular limit (G already applied).
struct SegmentCache {
    uint16_t selector = 0;
    uint16_t attr = 0;
    uint32_t limit = 0;
    uint64_t base = 0;

    unsigned dpl() const { return (attr & k_seg_dpl_mask) >> k_seg_dpl_shift; }
    bool present() const { return attr & k_seg_p; }
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

// 128-bit vector register / 80-bit x87 register slot.
union Vec128 {
    uint8_t b[16];
    uint16_t w[8];
    uint32_t d[4];
    uint64_t q[2];
    float f[4];
    double df[2];
};
static_assert(sizeof(Vec128) == 16);

// The x87/MMX/SSE state in exactly the 512-byte FXSAVE layout (64-bit
// format), so FXSAVE/FXRSTOR and XSAVE's legacy region are byte copies.
struct alignas(16) FxsaveArea {
    uint16_t fcw = 0;
    uint16_t fsw = 0;
    uint8_t ftw = 0; // abridged tag: bit i set = physical register i valid
    uint8_t reserved0 = 0;
    uint16_t fop = 0;
    uint64_t fip = 0;
    uint64_t fdp = 0;
    uint32_t mxcsr = 0;
    uint32_t mxcsr_mask = 0;
    Vec128 st[8] = {}; // 80-bit values in the low 10 bytes, ST(i) relative to TOP in fsw
    Vec128 xmm[16] = {};
    uint8_t reserved1[96] = {};
};
static_assert(sizeof(FxsaveArea) == 512);
static_assert(offsetof(FxsaveArea, mxcsr) == 24);
static_assert(offsetof(FxsaveArea, st) == 32);
static_assert(offsetof(FxsaveArea, xmm) == 160);

// XSAVE components beyond the legacy region. Only x87 and SSE are enabled
// today; the AVX upper halves are here so a later AVX implementation and
// KVM's XSAVE ioctls do not change the saved-state layout.
struct XsaveExtended {
    uint64_t xcr0 = 1; // XFEATURE_ENABLED_MASK
    uint64_t xstate_bv = 0; // components not in their init state
    Vec128 ymm_hi[16] = {};
};

inline constexpr unsigned k_mtrr_var_count = 8;
inline constexpr unsigned k_mtrr_fixed_count = 11;

// Model-specific registers the CPU keeps (others are handled by the
// accelerator: they read as constants or fault).
struct Msrs {
    uint64_t star = 0;
    uint64_t lstar = 0;
    uint64_t cstar = 0;
    uint64_t sfmask = 0;
    uint64_t kernel_gs_base = 0;
    uint64_t sysenter_cs = 0;
    uint64_t sysenter_esp = 0;
    uint64_t sysenter_eip = 0;
    uint64_t pat = 0x0007040600070406ull;
    // TSC = virtual clock scaled to tsc_hz, plus tsc_offset. WRMSR TSC
    // changes the offset; the value itself is never stored, so it keeps
    // running with the virtual clock across save/restore.
    int64_t tsc_offset = 0;
    uint64_t tsc_aux = 0;
    uint64_t tsc_deadline = 0;
    uint64_t apic_base = 0;
    uint64_t misc_enable = 0;
    uint64_t mtrr_def_type = 0;
    uint64_t mtrr_fixed[k_mtrr_fixed_count] = {};
    uint64_t mtrr_var_base[k_mtrr_var_count] = {};
    uint64_t mtrr_var_mask[k_mtrr_var_count] = {};
    uint64_t mcg_status = 0;
    uint64_t spec_ctrl = 0;
    // KVM paravirtual clock (MSR_KVM_SYSTEM_TIME_NEW): guest address of the
    // per-CPU time structure | enable bit; zero unless the CPU model
    // advertises kvmclock (only KVM does today). The wall-clock MSR is a
    // write-only trigger and not CPU state.
    uint64_t kvm_system_time = 0;
};

// Events between instructions: what the CPU owes the guest next.
struct PendingEvents {
    // An exception raised but not yet delivered (KVM can hand one back).
    bool exception_pending = false;
    uint8_t exception_vector = 0;
    bool exception_has_error_code = false;
    uint32_t exception_error_code = 0;
    // An external interrupt acknowledged from the APIC/PIC but not yet
    // delivered through the IDT.
    bool interrupt_injected = false;
    uint8_t interrupt_vector = 0;
    // NMI latched, and NMIs blocked because one is being handled (until IRET).
    bool nmi_pending = false;
    bool nmi_blocked = false;
    // Interrupt shadow after STI / MOV SS / POP SS: one instruction with
    // interrupts (and, for MOV SS, debug traps) blocked.
    static constexpr uint8_t k_shadow_sti = 1;
    static constexpr uint8_t k_shadow_mov_ss = 2;
    uint8_t interrupt_shadow = 0;
};

struct CpuState {
    uint64_t gpr[k_gpr_count] = {};
    uint64_t rip = 0;
    uint64_t rflags = k_flag_fixed1;

    SegmentCache seg[k_seg_count];
    SegmentCache ldtr;
    SegmentCache tr;
    DescriptorTable gdtr;
    DescriptorTable idtr;

    uint64_t cr0 = 0;
    uint64_t cr2 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t cr8 = 0; // TPR[7:4] mirror; the APIC owns the real TPR
    uint64_t dr[8] = {}; // DR4/DR5 alias DR6/DR7 and are not stored separately
    uint64_t efer = 0;
    Msrs msr;

    FxsaveArea fpu;
    XsaveExtended xsave;

    PendingEvents events;
    bool halted = false; // in HLT, waiting for an interrupt
    uint32_t apic_id = 0; // initial APIC ID (CPUID.1:EBX[31:24])

    SegmentCache& segment(Seg s) { return seg[static_cast<unsigned>(s)]; }
    const SegmentCache& segment(Seg s) const { return seg[static_cast<unsigned>(s)]; }

    bool protected_mode() const { return cr0 & k_cr0_pe; }
    bool paging() const { return cr0 & k_cr0_pg; }
    bool long_mode_active() const { return efer & k_efer_lma; }
    bool v8086() const { return rflags & k_flag_vm; }
    // 64-bit submode of long mode: LMA and CS.L.
    bool mode64() const { return long_mode_active() && (segment(Seg::CS).attr & k_seg_l); }
    // Current privilege level: 0 in real mode, 3 in virtual-8086 mode,
    // otherwise SS.DPL (which always equals CPL; CS.DPL does not for
    // conforming code segments, and CS.RPL is stale right after CR0.PE is set).
    unsigned cpl() const
    {
        if (!protected_mode())
            return 0;
        if (v8086())
            return 3;
        return segment(Seg::SS).dpl();
    }
};

enum class ResetKind {
    PowerOn, // RESET#: everything to its documented power-on value
    Init, // INIT: like power-on but keeps x87/SSE state, MTRRs, and some MSRs
};

// Puts `state` into the documented x86 reset state (Intel SDM vol. 3,
// table 10-1): real mode, CS.selector=F000 with base FFFF0000, RIP=FFF0.
// `cpuid_signature` is the family/model/stepping value left in EDX.
// `bsp` selects the APIC_BASE BSP bit.
void reset_cpu_state(CpuState& state, ResetKind kind, uint32_t cpuid_signature, bool bsp);

} // namespace kiln::accel::x86
