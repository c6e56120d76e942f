// System instructions: descriptor tables, control/debug registers, MSRs,
// CPUID, TSC, SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS, HLT, CLI/STI,
// LAR/LSL/VERR/VERW/ARPL, CMPXCHG8B/16B, fences and cache control.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

SegmentCache flat_segment(uint16_t selector, bool code, bool long64, unsigned dpl)
{
    SegmentCache c;
    c.selector = selector;
    c.base = 0;
    c.limit = 0xffffffff;
    c.attr = uint16_t(k_seg_p | k_seg_s | k_seg_g | (dpl << k_seg_dpl_shift) | (code ? 0xb : 0x3));
    if (code && long64)
        c.attr |= k_seg_l;
    else
        c.attr |= k_seg_db;
    return c;
}

} // namespace

static void require_cpl0(InterpreterImpl& cpu)
{
    if (cpu.cpl() != 0)
        cpu.raise_gp0();
}

// LLDT / LTR: system descriptors are 16 bytes in long mode.
static void load_system_segment(InterpreterImpl& cpu, bool is_tr, uint16_t sel)
{
    CpuState& s = cpu.state();
    SegmentCache& target = is_tr ? s.tr : s.ldtr;
    if ((sel & ~3u) == 0) {
        if (is_tr)
            cpu.raise_gp0();
        target = SegmentCache {};
        target.selector = sel;
        return;
    }
    if (sel & 4)
        cpu.raise(k_gp, sel & ~3u);
    uint64_t desc = cpu.read_descriptor(sel, k_gp);
    SegmentCache c = cpu.cache_from_descriptor(sel, desc);
    unsigned type = c.attr & 0xf;
    if (c.attr & k_seg_s)
        cpu.raise(k_gp, sel & ~3u);
    if (is_tr ? (type != 0x9 && type != 0x1) : type != 0x2)
        cpu.raise(k_gp, sel & ~3u);
    if (!c.present())
        cpu.raise(k_np, sel & ~3u);
    if (s.long_mode_active()) {
        uint64_t hi = cpu.read_linear(s.gdtr.base + (sel & ~7u) + 8, 8);
        c.base |= (hi & 0xffffffff) << 32;
    }
    if (is_tr) {
        cpu.write_descriptor_high(sel, uint32_t(desc >> 32) | (2u << 8)); // busy
        c.attr |= 0x2;
    }
    target = c;
}

// LAR/LSL/VERR/VERW: is `sel` visible at this CPL/RPL? Returns the descriptor.
static bool selector_accessible(InterpreterImpl& cpu, uint16_t sel, uint64_t& desc, bool for_lsl, int verify)
{
    CpuState& s = cpu.state();
    if ((sel & ~3u) == 0)
        return false;
    uint64_t index = sel & ~7u;
    const DescriptorTable table = (sel & 4) ? DescriptorTable { s.ldtr.base, uint16_t(s.ldtr.limit) } : s.gdtr;
    if ((sel & 4) && !(s.ldtr.attr & k_seg_p))
        return false;
    if (index + 7 > table.limit)
        return false;
    desc = cpu.read_linear(table.base + index, 8);
    unsigned type = (desc >> 40) & 0xf;
    bool system = !((desc >> 44) & 1);
    unsigned dpl = (desc >> 45) & 3;
    if (system) {
        if (verify >= 0)
            return false;
        bool lm = s.long_mode_active();
        bool ok;
        switch (type) {
        case 0x2:
        case 0x9:
        case 0xb:
            ok = true;
            break;
        case 0x1:
        case 0x3:
            ok = !lm;
            break;
        case 0x4:
        case 0x5:
        case 0x6:
        case 0x7:
        case 0xc:
        case 0xe:
        case 0xf:
            ok = !for_lsl && (type == 0xc || !lm);
            break;
        default:
            ok = false;
        }
        if (!ok)
            return false;
    } else {
        bool code = type & 0x8;
        if (verify == 0 && code && !(type & 0x2))
            return false;
        if (verify == 1 && (code || !(type & 0x2)))
            return false;
        bool conforming = code && (type & 0x4);
        if (conforming)
            return true;
    }
    return dpl >= cpu.cpl() && dpl >= (sel & 3u);
}

bool InterpreterImpl::exec_system(const DecodedInsn& d)
{
    const unsigned op = d.op;
    const unsigned size = d.opsize;
    CpuState& s = m_s;
    switch (op) {
    case 0xf4: // HLT
        require_cpl0(*this);
        halt();
        return true;
    case 0xfa:
    case 0xfb: { // CLI / STI
        m_flags.materialize(s.rflags);
        unsigned iopl = (s.rflags & k_flag_iopl) >> 12;
        if (s.protected_mode() && (s.v8086() ? iopl < 3 : m_cpl > iopl))
            raise_gp0();
        if (op == 0xfa) {
            s.rflags &= ~k_flag_if;
        } else if (!(s.rflags & k_flag_if)) {
            s.rflags |= k_flag_if;
            set_interrupt_shadow(PendingEvents::k_shadow_sti);
            request_irq_check();
        }
        return true;
    }
    case 0x63: { // ARPL (legacy protected mode)
        if (!s.protected_mode() || s.v8086())
            raise_ud();
        uint64_t dst = read_rm(d, 2);
        uint64_t src = reg(d.reg, 2);
        if ((dst & 3) < (src & 3)) {
            write_rm(d, 2, (dst & ~3ull) | (src & 3));
            m_flags.set_eager(s.rflags, k_flag_zf, k_flag_zf);
        } else {
            m_flags.set_eager(s.rflags, 0, k_flag_zf);
        }
        return true;
    }
    case 0x100: { // group 6
        unsigned r = d.reg & 7;
        if (!s.protected_mode() || s.v8086())
            raise_ud();
        switch (r) {
        case 0: // SLDT
        case 1: // STR
            if (d.mod == 3)
                set_reg(d.rm, size, r == 0 ? s.ldtr.selector : s.tr.selector);
            else
                write_rm(d, 2, r == 0 ? s.ldtr.selector : s.tr.selector);
            return true;
        case 2:
        case 3:
            require_cpl0(*this);
            load_system_segment(*this, r == 3, uint16_t(read_rm(d, 2)));
            return true;
        case 4:
        case 5: { // VERR / VERW
            uint64_t desc;
            bool ok = selector_accessible(*this, uint16_t(read_rm(d, 2)), desc, false, r == 4 ? 0 : 1);
            m_flags.set_eager(s.rflags, ok ? k_flag_zf : 0, k_flag_zf);
            return true;
        }
        default:
            raise_ud();
        }
    }
    case 0x101: // group 7
        break;
    case 0x102:
    case 0x103: { // LAR / LSL
        if (!s.protected_mode() || s.v8086())
            raise_ud();
        uint64_t desc;
        uint16_t sel = uint16_t(read_rm(d, 2));
        bool ok = selector_accessible(*this, sel, desc, op == 0x103, -1);
        if (ok) {
            if (op == 0x102) {
                set_reg(d.reg, size, desc >> 32 & 0x00f0ff00);
            } else {
                uint32_t limit = uint32_t((desc & 0xffff) | (((desc >> 48) & 0xf) << 16));
                if (desc & (1ull << 55))
                    limit = (limit << 12) | 0xfff;
                set_reg(d.reg, size, limit);
            }
        }
        m_flags.set_eager(s.rflags, ok ? k_flag_zf : 0, k_flag_zf);
        return true;
    }
    case 0x105: { // SYSCALL
        if (!(s.efer & k_efer_sce))
            raise_ud();
        m_flags.materialize(s.rflags);
        uint16_t cs_sel = uint16_t((s.msr.star >> 32) & 0xfffc);
        if (s.long_mode_active()) {
            s.gpr[k_rcx] = m_next_rip;
            s.gpr[k_r11] = s.rflags & ~k_flag_rf;
            s.segment(Seg::CS) = flat_segment(cs_sel, true, true, 0);
            s.segment(Seg::SS) = flat_segment(uint16_t(cs_sel + 8), false, false, 0);
            m_next_rip = m_mode64 ? s.msr.lstar : s.msr.cstar;
            s.rflags &= ~(s.msr.sfmask | k_flag_rf);
        } else {
            s.gpr[k_rcx] = m_next_rip & 0xffffffff;
            s.segment(Seg::CS) = flat_segment(cs_sel, true, false, 0);
            s.segment(Seg::SS) = flat_segment(uint16_t(cs_sel + 8), false, false, 0);
            m_next_rip = s.msr.star & 0xffffffff;
            s.rflags &= ~(k_flag_vm | k_flag_if | k_flag_rf);
        }
        s.rflags |= k_flag_fixed1;
        m_cpl = 0;
        update_mode();
        end_block();
        return true;
    }
    case 0x107: { // SYSRET
        if (!(s.efer & k_efer_sce))
            raise_ud();
        if (!s.protected_mode() || m_cpl != 0)
            raise_gp0();
        uint16_t base = uint16_t((s.msr.star >> 48) & 0xffff);
        if (s.long_mode_active()) {
            bool to64 = size == 8;
            uint64_t target = to64 ? s.gpr[k_rcx] : s.gpr[k_rcx] & 0xffffffff;
            if (to64 && uint64_t(int64_t(target << 16) >> 16) != target)
                raise_gp0();
            set_flags((s.gpr[k_r11] & 0x3c7fd7) | k_flag_fixed1);
            s.segment(Seg::CS) = flat_segment(uint16_t((to64 ? base + 16 : base) | 3), true, to64, 3);
            m_next_rip = target;
        } else {
            s.segment(Seg::CS) = flat_segment(uint16_t(base | 3), true, false, 3);
            m_flags.materialize(s.rflags);
            s.rflags |= k_flag_if;
            m_next_rip = s.gpr[k_rcx] & 0xffffffff;
        }
        // SS keeps a flat descriptor; only its selector comes from STAR.
        SegmentCache& ss = s.segment(Seg::SS);
        ss.selector = uint16_t((base + 8) | 3);
        ss.attr = uint16_t((ss.attr & ~k_seg_dpl_mask) | (3u << k_seg_dpl_shift) | k_seg_p);
        m_cpl = 3;
        update_mode();
        request_irq_check();
        end_block();
        return true;
    }
    case 0x134: { // SYSENTER
        if (!s.protected_mode() || (s.msr.sysenter_cs & 0xfffc) == 0)
            raise_gp0();
        m_flags.materialize(s.rflags);
        s.rflags &= ~(k_flag_vm | k_flag_if | k_flag_rf);
        uint16_t cs_sel = uint16_t(s.msr.sysenter_cs & 0xfffc);
        bool lm = s.long_mode_active();
        s.segment(Seg::CS) = flat_segment(cs_sel, true, lm, 0);
        s.segment(Seg::SS) = flat_segment(uint16_t(cs_sel + 8), false, false, 0);
        m_cpl = 0;
        update_mode();
        s.gpr[k_rsp] = lm ? s.msr.sysenter_esp : s.msr.sysenter_esp & 0xffffffff;
        m_next_rip = lm ? s.msr.sysenter_eip : s.msr.sysenter_eip & 0xffffffff;
        end_block();
        return true;
    }
    case 0x135: { // SYSEXIT
        if (!s.protected_mode() || s.v8086() || m_cpl != 0 || (s.msr.sysenter_cs & 0xfffc) == 0)
            raise_gp0();
        bool to64 = size == 8;
        uint16_t base = uint16_t(s.msr.sysenter_cs & 0xfffc);
        uint16_t cs_sel = uint16_t((to64 ? base + 32 : base + 16) | 3);
        s.segment(Seg::CS) = flat_segment(cs_sel, true, to64, 3);
        s.segment(Seg::SS) = flat_segment(uint16_t((to64 ? base + 40 : base + 24) | 3), false, false, 3);
        m_cpl = 3;
        update_mode();
        s.gpr[k_rsp] = to64 ? s.gpr[k_rcx] : s.gpr[k_rcx] & 0xffffffff;
        m_next_rip = to64 ? s.gpr[k_rdx] : s.gpr[k_rdx] & 0xffffffff;
        end_block();
        return true;
    }
    case 0x106: // CLTS
        require_cpl0(*this);
        s.cr0 &= ~k_cr0_ts;
        return true;
    case 0x108:
    case 0x109: // INVD / WBINVD
        require_cpl0(*this);
        return true;
    case 0x10b: // UD2
        raise_ud();
    case 0x10d: // PREFETCH hints
    case 0x118:
    case 0x119:
    case 0x11a:
    case 0x11b:
    case 0x11c:
    case 0x11d:
    case 0x11e:
    case 0x11f:
        return true; // hint NOPs (incl. ENDBR)
    case 0x120:
    case 0x122: { // MOV r, CRn / MOV CRn, r
        require_cpl0(*this);
        unsigned cr = d.reg;
        unsigned sz = m_mode64 ? 8 : 4;
        if (op == 0x120) {
            uint64_t v;
            switch (cr) {
            case 0:
                v = s.cr0;
                break;
            case 2:
                v = s.cr2;
                break;
            case 3:
                v = s.cr3;
                break;
            case 4:
                v = s.cr4;
                break;
            case 8:
                v = s.cr8;
                break;
            default:
                raise_ud();
            }
            set_reg(d.rm, sz, v);
            return true;
        }
        uint64_t v = reg(d.rm, sz);
        switch (cr) {
        case 0:
            write_cr0(v);
            break;
        case 2:
            s.cr2 = v;
            break;
        case 3:
            write_cr3(v);
            break;
        case 4:
            write_cr4(v);
            break;
        case 8:
            if (v & ~0xfull)
                raise_gp0();
            s.cr8 = v;
            request_irq_check();
            break;
        default:
            raise_ud();
        }
        return true;
    }
    case 0x121:
    case 0x123: { // MOV DRn
        require_cpl0(*this);
        unsigned dr = d.reg;
        if (dr > 7)
            raise_ud();
        if (dr == 4 || dr == 5) {
            if (s.cr4 & k_cr4_de)
                raise_ud();
            dr += 2;
        }
        unsigned sz = m_mode64 ? 8 : 4;
        if (op == 0x121) {
            set_reg(d.rm, sz, s.dr[dr]);
        } else {
            uint64_t v = reg(d.rm, sz);
            if (dr == 6)
                v = (v & 0x1e00f) | 0xffff0ff0;
            else if (dr == 7)
                v = (v & 0xffff2bff) | 0x400;
            s.dr[dr] = v;
            update_debug_state();
        }
        return true;
    }
    case 0x130: { // WRMSR
        require_cpl0(*this);
        uint64_t v = (s.gpr[k_rdx] << 32) | (s.gpr[k_rax] & 0xffffffff);
        if (!write_msr(uint32_t(s.gpr[k_rcx]), v))
            raise_gp0();
        end_block();
        return true;
    }
    case 0x132: { // RDMSR
        require_cpl0(*this);
        uint64_t v;
        if (!read_msr(uint32_t(s.gpr[k_rcx]), v))
            raise_gp0();
        s.gpr[k_rax] = v & 0xffffffff;
        s.gpr[k_rdx] = v >> 32;
        return true;
    }
    case 0x131: { // RDTSC
        if ((s.cr4 & k_cr4_tsd) && m_cpl != 0)
            raise_gp0();
        uint64_t t = read_tsc();
        s.gpr[k_rax] = t & 0xffffffff;
        s.gpr[k_rdx] = t >> 32;
        return true;
    }
    case 0x133: // RDPMC: no counters
        raise_gp0();
    case 0x1a2: { // CPUID
        CpuidResult r = m_model.query(uint32_t(s.gpr[k_rax]), uint32_t(s.gpr[k_rcx]), s.apic_id, s.cr4 & k_cr4_osxsave);
        s.gpr[k_rax] = r.eax;
        s.gpr[k_rbx] = r.ebx;
        s.gpr[k_rcx] = r.ecx;
        s.gpr[k_rdx] = r.edx;
        return true;
    }
    case 0x282: { // INVPCID r, m128 (66 0F 38 82)
        if (!m_model.has_invpcid() || !d.has_66() || d.rep() || d.repne() || d.mod == 3)
            raise_ud();
        require_cpl0(*this);
        uint64_t type = reg(d.reg, m_mode64 ? 8 : 4);
        Seg seg = operand_seg(d);
        uint64_t ea = effective_address(d);
        uint64_t desc_lo = read_mem(seg, ea, 8);
        uint64_t addr = read_mem(seg, (ea + 8) & addr_mask(d.addrsize), 8);
        uint64_t pcid = desc_lo & 0xfff;
        bool pcide = s.cr4 & k_cr4_pcide;
        if (type > 3 || (desc_lo >> 12))
            raise_gp0();
        if (type == 0 && uint64_t(int64_t(addr << 16) >> 16) != addr)
            raise_gp0();
        if (type <= 1 && !pcide && pcid != 0)
            raise_gp0();
        // The TLB is untagged: one address in every context (type 0), all
        // non-global entries (types 1 and 3), everything (type 2).
        if (type == 0)
            flush_tlb_page(addr);
        else
            flush_tlb(type == 2);
        end_block();
        return true;
    }
    case 0x1c7: { // group 9
        unsigned r = d.reg & 7;
        if (r == 4 && d.mod != 3) { // XSAVEC
            if (!exec_xsave(d))
                raise_ud();
            return true;
        }
        if (r != 1 || d.mod == 3)
            raise_ud();
        Seg seg = operand_seg(d);
        uint64_t ea = effective_address(d);
        if (size == 8) { // CMPXCHG16B
            if (!(m_model.features1_ecx() & k_cpuid1_ecx_cx16))
                raise_ud();
            if (ea & 15)
                raise_gp0();
            uint64_t lo = read_mem(seg, ea, 8);
            uint64_t hi = read_mem(seg, ea + 8, 8);
            bool eq = lo == s.gpr[k_rax] && hi == s.gpr[k_rdx];
            if (eq) {
                write_mem(seg, ea, 8, s.gpr[k_rbx]);
                write_mem(seg, ea + 8, 8, s.gpr[k_rcx]);
            } else {
                write_mem(seg, ea, 8, lo);
                write_mem(seg, ea + 8, 8, hi);
                s.gpr[k_rax] = lo;
                s.gpr[k_rdx] = hi;
            }
            m_flags.set_eager(s.rflags, eq ? k_flag_zf : 0, k_flag_zf);
        } else { // CMPXCHG8B
            uint64_t v = read_mem(seg, ea, 8);
            uint64_t cmp = ((s.gpr[k_rdx] & 0xffffffff) << 32) | (s.gpr[k_rax] & 0xffffffff);
            bool eq = v == cmp;
            if (eq) {
                write_mem(seg, ea, 8, ((s.gpr[k_rcx] & 0xffffffff) << 32) | (s.gpr[k_rbx] & 0xffffffff));
            } else {
                write_mem(seg, ea, 8, v);
                s.gpr[k_rax] = v & 0xffffffff;
                s.gpr[k_rdx] = v >> 32;
            }
            m_flags.set_eager(s.rflags, eq ? k_flag_zf : 0, k_flag_zf);
        }
        return true;
    }
    default:
        return false;
    }

    // Group 7 (0F 01).
    unsigned r = d.reg & 7;
    if (d.mod == 3) {
        switch (d.modrm) {
        case 0xca: // CLAC
        case 0xcb: // STAC
            if (!m_model.has_smap() || m_cpl != 0)
                raise_ud();
            m_flags.materialize(s.rflags);
            if (d.modrm == 0xcb)
                s.rflags |= k_flag_ac;
            else
                s.rflags &= ~k_flag_ac;
            return true;
        case 0xf8: // SWAPGS
            if (!m_mode64)
                raise_ud();
            require_cpl0(*this);
            std::swap(s.segment(Seg::GS).base, s.msr.kernel_gs_base);
            return true;
        case 0xf9: { // RDTSCP
            if (!(m_model.ext_features_edx() & k_cpuidx1_edx_rdtscp))
                raise_ud();
            if ((s.cr4 & k_cr4_tsd) && m_cpl != 0)
                raise_gp0();
            uint64_t t = read_tsc();
            s.gpr[k_rax] = t & 0xffffffff;
            s.gpr[k_rdx] = t >> 32;
            s.gpr[k_rcx] = s.msr.tsc_aux & 0xffffffff;
            return true;
        }
        case 0xd0: // XGETBV
            return exec_xgetbv();
        case 0xd1: // XSETBV
            return exec_xsetbv();
        default:
            break;
        }
        if (r == 4) { // SMSW r
            set_reg(d.rm, size, s.cr0 & (size == 2 ? 0xffff : ~0ull));
            return true;
        }
        if (r == 6) { // LMSW r
            require_cpl0(*this);
            uint64_t v = reg(d.rm, 2);
            write_cr0((s.cr0 & ~0xeull) | (v & 0xf) | (s.cr0 & k_cr0_pe));
            return true;
        }
        raise_ud();
    }
    Seg seg = operand_seg(d);
    uint64_t ea = effective_address(d);
    uint64_t am = addr_mask(d.addrsize);
    switch (r) {
    case 0:
    case 1: { // SGDT / SIDT
        const DescriptorTable& t = r == 0 ? s.gdtr : s.idtr;
        write_mem(seg, ea, 2, t.limit);
        unsigned bsz = m_mode64 ? 8 : 4;
        uint64_t base = t.base;
        if (!m_mode64 && size == 2)
            base &= 0xffffff;
        write_mem(seg, (ea + 2) & am, bsz, base);
        return true;
    }
    case 2:
    case 3: { // LGDT / LIDT
        require_cpl0(*this);
        uint16_t limit = uint16_t(read_mem(seg, ea, 2));
        uint64_t base = read_mem(seg, (ea + 2) & am, m_mode64 ? 8 : 4);
        if (!m_mode64 && size == 2)
            base &= 0xffffff;
        if (m_mode64 && uint64_t(int64_t(base << 16) >> 16) != base)
            raise_gp0();
        (r == 2 ? s.gdtr : s.idtr) = DescriptorTable { base, limit };
        return true;
    }
    case 4: // SMSW m16
        write_mem(seg, ea, 2, s.cr0 & 0xffff);
        return true;
    case 6: { // LMSW m16
        require_cpl0(*this);
        uint64_t v = read_mem(seg, ea, 2);
        write_cr0((s.cr0 & ~0xeull) | (v & 0xf) | (s.cr0 & k_cr0_pe));
        return true;
    }
    case 7: // INVLPG
        require_cpl0(*this);
        flush_tlb_page(linear(seg, ea, 1, Access::Read));
        return true;
    default:
        raise_ud();
    }
}

} // namespace kiln::accel::interp
