#include "accel/kvm/kvm_state.h"

#include <cstdio>
#include <cstring>

namespace kiln::accel::kvm {

using namespace x86;

namespace {

// KVM's interrupt-shadow bits are the other way round from CpuState's.
constexpr uint8_t k_kvm_shadow_mov_ss = KVM_X86_SHADOW_INT_MOV_SS;
constexpr uint8_t k_kvm_shadow_sti = KVM_X86_SHADOW_INT_STI;

void table_to_kvm(const DescriptorTable& in, kvm_dtable& out)
{
    out = {};
    out.base = in.base;
    out.limit = in.limit;
}

DescriptorTable table_from_kvm(const kvm_dtable& in) { return { in.base, in.limit }; }

} // namespace

void segment_to_kvm(const SegmentCache& in, kvm_segment& out)
{
    out = {};
    out.base = in.base;
    out.limit = in.limit;
    out.selector = in.selector;
    out.type = in.attr & k_seg_type_mask;
    out.s = (in.attr & k_seg_s) != 0;
    out.dpl = in.dpl();
    out.present = in.present();
    out.avl = (in.attr & k_seg_avl) != 0;
    out.l = (in.attr & k_seg_l) != 0;
    out.db = (in.attr & k_seg_db) != 0;
    out.g = (in.attr & k_seg_g) != 0;
    // VMX's "unusable" is what a not-present cache means to the CPU.
    out.unusable = !in.present();
}

SegmentCache segment_from_kvm(const kvm_segment& in)
{
    SegmentCache s;
    s.base = in.base;
    s.limit = in.limit;
    s.selector = in.selector;
    s.attr = uint16_t((in.type & k_seg_type_mask) | (in.s ? k_seg_s : 0) | ((in.dpl & 3) << k_seg_dpl_shift)
        | (in.present && !in.unusable ? k_seg_p : 0) | (in.avl ? k_seg_avl : 0) | (in.l ? k_seg_l : 0)
        | (in.db ? k_seg_db : 0) | (in.g ? k_seg_g : 0));
    return s;
}

void regs_to_kvm(const CpuState& s, kvm_regs& out)
{
    out = {};
    out.rax = s.gpr[k_rax];
    out.rbx = s.gpr[k_rbx];
    out.rcx = s.gpr[k_rcx];
    out.rdx = s.gpr[k_rdx];
    out.rsi = s.gpr[k_rsi];
    out.rdi = s.gpr[k_rdi];
    out.rsp = s.gpr[k_rsp];
    out.rbp = s.gpr[k_rbp];
    out.r8 = s.gpr[k_r8];
    out.r9 = s.gpr[k_r9];
    out.r10 = s.gpr[k_r10];
    out.r11 = s.gpr[k_r11];
    out.r12 = s.gpr[k_r12];
    out.r13 = s.gpr[k_r13];
    out.r14 = s.gpr[k_r14];
    out.r15 = s.gpr[k_r15];
    out.rip = s.rip;
    out.rflags = s.rflags | k_flag_fixed1;
}

void regs_from_kvm(const kvm_regs& in, CpuState& s)
{
    s.gpr[k_rax] = in.rax;
    s.gpr[k_rbx] = in.rbx;
    s.gpr[k_rcx] = in.rcx;
    s.gpr[k_rdx] = in.rdx;
    s.gpr[k_rsi] = in.rsi;
    s.gpr[k_rdi] = in.rdi;
    s.gpr[k_rsp] = in.rsp;
    s.gpr[k_rbp] = in.rbp;
    s.gpr[k_r8] = in.r8;
    s.gpr[k_r9] = in.r9;
    s.gpr[k_r10] = in.r10;
    s.gpr[k_r11] = in.r11;
    s.gpr[k_r12] = in.r12;
    s.gpr[k_r13] = in.r13;
    s.gpr[k_r14] = in.r14;
    s.gpr[k_r15] = in.r15;
    s.rip = in.rip;
    s.rflags = in.rflags;
}

void sregs_to_kvm(const CpuState& s, kvm_sregs& out)
{
    out = {};
    segment_to_kvm(s.segment(Seg::CS), out.cs);
    segment_to_kvm(s.segment(Seg::DS), out.ds);
    segment_to_kvm(s.segment(Seg::ES), out.es);
    segment_to_kvm(s.segment(Seg::FS), out.fs);
    segment_to_kvm(s.segment(Seg::GS), out.gs);
    segment_to_kvm(s.segment(Seg::SS), out.ss);
    segment_to_kvm(s.tr, out.tr);
    segment_to_kvm(s.ldtr, out.ldt);
    table_to_kvm(s.gdtr, out.gdt);
    table_to_kvm(s.idtr, out.idt);
    out.cr0 = s.cr0;
    out.cr2 = s.cr2;
    out.cr3 = s.cr3;
    out.cr4 = s.cr4;
    out.cr8 = s.cr8;
    out.efer = s.efer;
    out.apic_base = s.msr.apic_base;
    if (s.events.interrupt_injected) {
        unsigned v = s.events.interrupt_vector;
        out.interrupt_bitmap[v / 64] |= 1ull << (v % 64);
    }
}

void sregs_from_kvm(const kvm_sregs& in, CpuState& s)
{
    s.segment(Seg::CS) = segment_from_kvm(in.cs);
    s.segment(Seg::DS) = segment_from_kvm(in.ds);
    s.segment(Seg::ES) = segment_from_kvm(in.es);
    s.segment(Seg::FS) = segment_from_kvm(in.fs);
    s.segment(Seg::GS) = segment_from_kvm(in.gs);
    s.segment(Seg::SS) = segment_from_kvm(in.ss);
    s.tr = segment_from_kvm(in.tr);
    s.ldtr = segment_from_kvm(in.ldt);
    s.gdtr = table_from_kvm(in.gdt);
    s.idtr = table_from_kvm(in.idt);
    s.cr0 = in.cr0;
    s.cr2 = in.cr2;
    s.cr3 = in.cr3;
    s.cr4 = in.cr4;
    s.cr8 = in.cr8;
    s.efer = in.efer;
    s.msr.apic_base = in.apic_base;
    // At most one vector is pending (KVM holds a single injected interrupt).
    s.events.interrupt_injected = false;
    for (unsigned w = 0; w < 4; w++)
        if (in.interrupt_bitmap[w]) {
            s.events.interrupt_injected = true;
            s.events.interrupt_vector = uint8_t(w * 64 + __builtin_ctzll(in.interrupt_bitmap[w]));
            break;
        }
}

void events_to_kvm(const CpuState& s, kvm_vcpu_events& out)
{
    const PendingEvents& e = s.events;
    out = {};
    out.exception.injected = e.exception_pending;
    out.exception.nr = e.exception_vector;
    out.exception.has_error_code = e.exception_has_error_code;
    out.exception.error_code = e.exception_error_code;
    out.interrupt.injected = e.interrupt_injected;
    out.interrupt.nr = e.interrupt_vector;
    out.interrupt.soft = 0;
    out.interrupt.shadow = uint8_t(((e.interrupt_shadow & PendingEvents::k_shadow_sti) ? k_kvm_shadow_sti : 0)
        | ((e.interrupt_shadow & PendingEvents::k_shadow_mov_ss) ? k_kvm_shadow_mov_ss : 0));
    out.nmi.injected = 0;
    out.nmi.pending = e.nmi_pending;
    out.nmi.masked = e.nmi_blocked;
    out.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
}

void events_from_kvm(const kvm_vcpu_events& in, CpuState& s)
{
    PendingEvents& e = s.events;
    // Without KVM_CAP_EXCEPTION_PAYLOAD enabled, KVM reports any exception
    // it still owes the guest as "injected"; either way it is re-delivered.
    e.exception_pending = in.exception.injected || in.exception.pending;
    e.exception_vector = in.exception.nr;
    e.exception_has_error_code = in.exception.has_error_code;
    e.exception_error_code = in.exception.error_code;
    if (!e.exception_pending) {
        e.exception_vector = 0;
        e.exception_has_error_code = false;
        e.exception_error_code = 0;
    }
    e.interrupt_injected = in.interrupt.injected;
    e.interrupt_vector = in.interrupt.injected ? in.interrupt.nr : 0;
    e.interrupt_shadow = 0;
    if (in.flags & KVM_VCPUEVENT_VALID_SHADOW) {
        if (in.interrupt.shadow & k_kvm_shadow_sti)
            e.interrupt_shadow |= PendingEvents::k_shadow_sti;
        if (in.interrupt.shadow & k_kvm_shadow_mov_ss)
            e.interrupt_shadow |= PendingEvents::k_shadow_mov_ss;
    }
    // An NMI KVM was in the middle of injecting is simply delivered again.
    e.nmi_pending = in.nmi.injected || in.nmi.pending;
    e.nmi_blocked = in.nmi.masked;
}

void debugregs_to_kvm(const CpuState& s, kvm_debugregs& out)
{
    out = {};
    for (unsigned i = 0; i < 4; i++)
        out.db[i] = s.dr[i];
    out.dr6 = s.dr[6];
    out.dr7 = s.dr[7];
}

void debugregs_from_kvm(const kvm_debugregs& in, CpuState& s)
{
    for (unsigned i = 0; i < 4; i++)
        s.dr[i] = in.db[i];
    s.dr[4] = s.dr[5] = 0;
    s.dr[6] = in.dr6;
    s.dr[7] = in.dr7;
}

void xsave_to_kvm(const CpuState& s, std::span<uint8_t> area)
{
    std::memset(area.data(), 0, area.size());
    std::memcpy(area.data(), &s.fpu, k_xsave_legacy_bytes);
    // x87 and SSE are always marked in use: CpuState holds them explicitly,
    // and "init" would make KVM ignore the values above.
    uint64_t xstate_bv = (s.xsave.xstate_bv | 0x3) & (s.xsave.xcr0 | 0x3);
    std::memcpy(area.data() + k_xsave_xstate_bv_offset, &xstate_bv, sizeof xstate_bv);
    std::memcpy(area.data() + k_xsave_avx_offset, s.xsave.ymm_hi, sizeof s.xsave.ymm_hi);
}

void xsave_from_kvm(std::span<const uint8_t> area, CpuState& s)
{
    std::memcpy(&s.fpu, area.data(), k_xsave_legacy_bytes);
    uint64_t xstate_bv;
    std::memcpy(&xstate_bv, area.data() + k_xsave_xstate_bv_offset, sizeof xstate_bv);
    s.xsave.xstate_bv = xstate_bv | 0x3;
    if (xstate_bv & 0x4)
        std::memcpy(s.xsave.ymm_hi, area.data() + k_xsave_avx_offset, sizeof s.xsave.ymm_hi);
    else
        std::memset(s.xsave.ymm_hi, 0, sizeof s.xsave.ymm_hi);
}

void fpu_to_kvm(const CpuState& s, kvm_fpu& out)
{
    out = {};
    const FxsaveArea& f = s.fpu;
    for (unsigned i = 0; i < 8; i++)
        std::memcpy(out.fpr[i], f.st[i].b, 16);
    out.fcw = f.fcw;
    out.fsw = f.fsw;
    out.ftwx = f.ftw;
    out.last_opcode = f.fop;
    out.last_ip = f.fip;
    out.last_dp = f.fdp;
    for (unsigned i = 0; i < 16; i++)
        std::memcpy(out.xmm[i], f.xmm[i].b, 16);
    out.mxcsr = f.mxcsr;
}

void fpu_from_kvm(const kvm_fpu& in, CpuState& s)
{
    FxsaveArea& f = s.fpu;
    for (unsigned i = 0; i < 8; i++)
        std::memcpy(f.st[i].b, in.fpr[i], 16);
    f.fcw = in.fcw;
    f.fsw = in.fsw;
    f.ftw = in.ftwx;
    f.fop = in.last_opcode;
    f.fip = in.last_ip;
    f.fdp = in.last_dp;
    for (unsigned i = 0; i < 16; i++)
        std::memcpy(f.xmm[i].b, in.xmm[i], 16);
    f.mxcsr = in.mxcsr;
}

void xcrs_to_kvm(const CpuState& s, kvm_xcrs& out)
{
    out = {};
    out.nr_xcrs = 1;
    out.xcrs[0].xcr = 0;
    out.xcrs[0].value = s.xsave.xcr0 | 1; // XCR0.x87 can never be clear
}

void xcrs_from_kvm(const kvm_xcrs& in, CpuState& s)
{
    for (unsigned i = 0; i < in.nr_xcrs && i < KVM_MAX_XCRS; i++)
        if (in.xcrs[i].xcr == 0)
            s.xsave.xcr0 = in.xcrs[i].value;
}

std::string format_cpu_state(const CpuState& s)
{
    static constexpr const char* gpr_names[16] = { "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9",
        "R10", "R11", "R12", "R13", "R14", "R15" };
    static constexpr const char* seg_names[6] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    std::string out;
    char line[160];
    for (unsigned i = 0; i < 16; i++) {
        snprintf(
            line, sizeof line, "%s=%016llx%s", gpr_names[i], (unsigned long long)s.gpr[i], i % 4 == 3 ? "\n" : " ");
        out += line;
    }
    snprintf(line, sizeof line, "RIP=%016llx RFL=%08llx CPL=%u HLT=%d\n", (unsigned long long)s.rip,
        (unsigned long long)s.rflags, s.cpl(), s.halted);
    out += line;
    auto seg_line = [&](const char* name, const SegmentCache& c) {
        snprintf(line, sizeof line, "%-3s=%04x %016llx %08x %04x\n", name, c.selector, (unsigned long long)c.base,
            c.limit, c.attr);
        out += line;
    };
    for (unsigned i = 0; i < 6; i++)
        seg_line(seg_names[i], s.seg[i]);
    seg_line("LDT", s.ldtr);
    seg_line("TR", s.tr);
    snprintf(line, sizeof line, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n", (unsigned long long)s.gdtr.base,
        s.gdtr.limit, (unsigned long long)s.idtr.base, s.idtr.limit);
    out += line;
    snprintf(line, sizeof line, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n", (unsigned long long)s.cr0,
        (unsigned long long)s.cr2, (unsigned long long)s.cr3, (unsigned long long)s.cr4);
    out += line;
    snprintf(line, sizeof line, "EFER=%016llx", (unsigned long long)s.efer);
    out += line;
    return out;
}

} // namespace kiln::accel::kvm
