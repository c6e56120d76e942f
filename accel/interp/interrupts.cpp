// Event delivery through the IVT (real mode) or IDT (protected and long
// mode), and IRET in all its forms (Intel SDM vol. 3, chapter 6).
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/gates.h"
#include "util/log.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

struct NewStack {
    SegmentCache ss;
    uint64_t sp;
    unsigned size; // 2, 4 or 8: stack address size
};

uint64_t wrap_sp(uint64_t sp, unsigned size) { return size == 2 ? sp & 0xffff : size == 4 ? sp & 0xffffffff : sp; }

} // namespace

void InterpreterImpl::deliver(uint8_t vector, EventKind kind, bool has_error, uint32_t error, uint64_t return_rip)
{
    const bool soft = kind == EventKind::Software || kind == EventKind::SoftwareException;
    const uint32_t ext = (kind == EventKind::External || kind == EventKind::Nmi) ? 1 : 0;
    uint64_t old_flags = flags();
    m_flags.materialize(m_s.rflags);
    if (Log::enabled(LogCategory(uint32_t(LogCategory::Int) | uint32_t(LogCategory::InAsm)))) [[unlikely]]
        m_trace.event(m_s, vector, soft, ext != 0 && kind == EventKind::External, has_error, error, return_rip);
    m_s.halted = false;

    if (!m_s.protected_mode()) {
        if (uint64_t(vector) * 4 + 3 > m_s.idtr.limit)
            raise_gp0();
        uint32_t entry = uint32_t(read_linear(m_s.idtr.base + vector * 4u, 4));
        push(old_flags & 0xffff, 2);
        push(m_s.segment(Seg::CS).selector, 2);
        push(return_rip & 0xffff, 2);
        load_segment_real(Seg::CS, uint16_t(entry >> 16));
        m_s.rip = entry & 0xffff;
        m_s.rflags &= ~(k_flag_if | k_flag_tf | k_flag_ac | k_flag_rf);
        m_next_rip = m_s.rip;
        end_block();
        return;
    }

    if (kind == EventKind::Software && m_s.v8086() && ((old_flags & k_flag_iopl) >> 12) < 3)
        raise_gp0();

    const bool lm = m_s.long_mode_active();
    const unsigned gate_size = lm ? 16 : 8;
    uint32_t gate_err = vector * 8u + 2 + ext;
    if (uint64_t(vector) * gate_size + gate_size - 1 > m_s.idtr.limit)
        raise(k_gp, gate_err);
    uint64_t gate = read_linear(m_s.idtr.base + vector * gate_size, 8);
    uint64_t gate_hi = lm ? read_linear(m_s.idtr.base + vector * gate_size + 8, 8) : 0;
    unsigned gate_type = (gate >> 40) & 0xf;
    unsigned gate_dpl = (gate >> 45) & 3;
    bool gate_p = (gate >> 47) & 1;
    bool gate32;
    if (lm) {
        if (gate_type != 0xe && gate_type != 0xf)
            raise(k_gp, gate_err);
        gate32 = true;
    } else {
        if (gate_type == 0x5) { // task gate: a hardware task switch
            if (soft && gate_dpl < m_cpl)
                raise(k_gp, gate_err);
            if (!gate_p)
                raise(k_np, gate_err);
            task_gate_event(*this, gate, gate_err, return_rip, has_error, error);
            if (kind == EventKind::Nmi)
                m_s.events.nmi_blocked = true;
            return;
        }
        if (gate_type != 0x6 && gate_type != 0x7 && gate_type != 0xe && gate_type != 0xf)
            raise(k_gp, gate_err);
        gate32 = gate_type & 0x8;
    }
    if (soft && gate_dpl < m_cpl)
        raise(k_gp, gate_err);
    if (!gate_p)
        raise(k_np, gate_err);
    bool trap_gate = gate_type & 1;
    uint16_t target_sel = uint16_t(gate >> 16);
    uint64_t target_off = (gate & 0xffff) | ((gate >> 32) & 0xffff0000);
    if (lm)
        target_off |= gate_hi << 32;
    else if (!gate32)
        target_off &= 0xffff;
    unsigned ist = lm ? (gate >> 32) & 7 : 0;

    if ((target_sel & ~3u) == 0)
        raise(k_gp, ext);
    uint64_t desc = read_descriptor(target_sel, k_gp);
    SegmentCache cs = cache_from_descriptor(target_sel, desc);
    unsigned type = cs.attr & 0xf;
    if (!(cs.attr & k_seg_s) || !(type & 0x8) || cs.dpl() > m_cpl)
        raise(k_gp, (target_sel & ~3u) | ext);
    if (!cs.present())
        raise(k_np, (target_sel & ~3u) | ext);
    if (lm && (!(cs.attr & k_seg_l) || (cs.attr & k_seg_db)))
        raise(k_gp, (target_sel & ~3u) | ext);
    bool conforming = type & 0x4;
    unsigned new_cpl = conforming ? m_cpl : cs.dpl();
    bool from_v86 = m_s.v8086();
    if (from_v86 && new_cpl != 0)
        raise(k_gp, (target_sel & ~3u) | ext);

    const SegmentCache old_ss = m_s.segment(Seg::SS);
    const uint64_t old_sp = m_s.gpr[k_rsp];
    const uint16_t old_cs = m_s.segment(Seg::CS).selector;
    NewStack ns { old_ss, old_sp, stack_size() };
    bool switch_stack = new_cpl < m_cpl;
    if (lm) {
        if (switch_stack || ist) {
            uint64_t off = ist ? 0x24 + (ist - 1) * 8 : 4 + new_cpl * 8;
            if (off + 7 > m_s.tr.limit)
                raise(k_ts, m_s.tr.selector & ~3u);
            ns.sp = read_linear(m_s.tr.base + off, 8);
        }
        if (switch_stack) {
            ns.ss = SegmentCache {};
            ns.ss.selector = uint16_t(new_cpl);
            ns.ss.attr = uint16_t(k_seg_p | k_seg_s | 0x3 | (new_cpl << k_seg_dpl_shift));
        }
        ns.sp &= ~0xfull;
        ns.size = 8;
    } else if (switch_stack) {
        // 32-bit TSS: ESPn at 4+8n, SSn at 8+8n (16-bit TSS: SPn at 2+4n, SSn at 4+4n).
        bool tss32 = (m_s.tr.attr & 0x8) != 0;
        uint64_t sp_off = tss32 ? 4 + new_cpl * 8 : 2 + new_cpl * 4;
        unsigned sp_size = tss32 ? 4 : 2;
        if (sp_off + sp_size + 1 > m_s.tr.limit)
            raise(k_ts, m_s.tr.selector & ~3u);
        uint64_t new_sp = read_linear(m_s.tr.base + sp_off, sp_size);
        uint16_t new_ss_sel = uint16_t(read_linear(m_s.tr.base + sp_off + sp_size, 2));
        if ((new_ss_sel & ~3u) == 0 || (new_ss_sel & 3) != new_cpl)
            raise(k_ts, new_ss_sel & ~3u);
        uint64_t ss_desc = read_descriptor(new_ss_sel, k_ts);
        SegmentCache ss = cache_from_descriptor(new_ss_sel, ss_desc);
        if (!(ss.attr & k_seg_s) || (ss.attr & 0x8) || !(ss.attr & 0x2) || ss.dpl() != new_cpl)
            raise(k_ts, new_ss_sel & ~3u);
        if (!ss.present())
            raise(k_ss, new_ss_sel & ~3u);
        ns.ss = ss;
        ns.sp = new_sp;
        ns.size = (ss.attr & k_seg_db) ? 4 : 2;
    }

    // Build the frame on the new stack before changing any state, so a
    // fault while pushing leaves the old state intact.
    const unsigned push_size = lm ? 8 : gate32 ? 4 : 2;
    uint64_t sp = ns.sp;
    const bool super = new_cpl != 3;
    auto push_new = [&](uint64_t v) {
        sp = wrap_sp(sp - push_size, ns.size);
        write_linear(lm ? sp : ((ns.ss.base + sp) & 0xffffffff), push_size, v, super);
    };
    if (from_v86) {
        push_new(m_s.segment(Seg::GS).selector);
        push_new(m_s.segment(Seg::FS).selector);
        push_new(m_s.segment(Seg::DS).selector);
        push_new(m_s.segment(Seg::ES).selector);
    }
    if (switch_stack || lm) {
        push_new(old_ss.selector);
        push_new(old_sp);
    }
    push_new(old_flags);
    push_new(old_cs);
    push_new(return_rip);
    if (has_error)
        push_new(error);

    // Commit.
    if (from_v86) {
        for (Seg s : { Seg::GS, Seg::FS, Seg::DS, Seg::ES })
            m_s.segment(s) = SegmentCache {};
    }
    m_s.rflags &= ~(k_flag_tf | k_flag_nt | k_flag_rf | k_flag_vm);
    if (!trap_gate)
        m_s.rflags &= ~k_flag_if;
    set_cs_for_transfer(target_sel, desc, new_cpl);
    if (switch_stack || lm)
        m_s.segment(Seg::SS) = ns.ss;
    if (ns.size == 8)
        m_s.gpr[k_rsp] = sp;
    else if (ns.size == 4)
        m_s.gpr[k_rsp] = sp & 0xffffffff; // upper half: see SDM 6.14 (cleared when switching)
    else
        m_s.gpr[k_rsp] = (m_s.gpr[k_rsp] & ~0xffffull) | (sp & 0xffff);
    if (kind == EventKind::Nmi)
        m_s.events.nmi_blocked = true;
    m_s.rip = target_off;
    m_next_rip = target_off;
    end_block();
}

void InterpreterImpl::iret(unsigned opsize)
{
    m_flags.materialize(m_s.rflags);
    const uint64_t old_flags = m_s.rflags;
    const unsigned iopl = (old_flags & k_flag_iopl) >> 12;
    m_s.events.nmi_blocked = false;

    if (!m_s.protected_mode() || m_s.v8086()) {
        if (m_s.v8086() && iopl < 3)
            raise_gp0();
        uint64_t ip = pop(opsize);
        uint16_t cs = uint16_t(pop(opsize));
        uint64_t f = pop(opsize);
        load_segment_real(Seg::CS, cs);
        m_next_rip = ip & (opsize == 2 ? 0xffff : 0xffffffff);
        uint64_t keep = m_s.v8086() ? (k_flag_iopl | k_flag_vm | k_flag_vif | k_flag_vip) : k_flag_vm;
        uint64_t mask = opsize == 2 ? 0xffff : 0x3fffff;
        uint64_t nf = (old_flags & ~mask) | (f & mask);
        nf = (nf & ~keep) | (old_flags & keep);
        set_flags(nf);
        request_irq_check();
        end_block();
        return;
    }
    if (old_flags & k_flag_nt) {
        if (m_s.long_mode_active())
            raise_gp0();
        task_return(*this, m_next_rip);
        return;
    }

    uint64_t sp = stack_pointer();
    unsigned ss_size = stack_size();
    auto at = [&](unsigned slot) { return wrap_sp(sp + uint64_t(slot) * opsize, ss_size); };
    uint64_t new_ip = read_mem(Seg::SS, at(0), opsize);
    uint16_t new_cs = uint16_t(read_mem(Seg::SS, at(1), opsize));
    uint64_t new_flags = read_mem(Seg::SS, at(2), opsize);
    if (opsize == 2)
        new_flags = (old_flags & ~0xffffull) | (new_flags & 0xffff);

    if ((new_flags & k_flag_vm) && m_cpl == 0 && opsize == 4 && !m_mode64) {
        // Return to virtual-8086 mode.
        uint64_t new_sp = read_mem(Seg::SS, at(3), 4);
        uint16_t sels[5];
        for (unsigned i = 0; i < 5; i++)
            sels[i] = uint16_t(read_mem(Seg::SS, at(4 + i), 4));
        set_flags(new_flags);
        update_mode();
        load_segment_real(Seg::CS, new_cs);
        load_segment_real(Seg::SS, sels[0]);
        load_segment_real(Seg::ES, sels[1]);
        load_segment_real(Seg::DS, sels[2]);
        load_segment_real(Seg::FS, sels[3]);
        load_segment_real(Seg::GS, sels[4]);
        m_s.gpr[k_rsp] = new_sp & 0xffffffff;
        m_next_rip = new_ip & 0xffff;
        update_mode();
        request_irq_check();
        end_block();
        return;
    }

    if ((new_cs & ~3u) == 0)
        raise_gp0();
    uint64_t desc = read_descriptor(new_cs, k_gp);
    unsigned rpl = new_cs & 3;
    unsigned dtype = (desc >> 40) & 0xf;
    unsigned ddpl = (desc >> 45) & 3;
    if (!((desc >> 44) & 1) || !(dtype & 0x8) || rpl < m_cpl || ((dtype & 0x4) ? ddpl > rpl : ddpl != rpl))
        raise(k_gp, new_cs & ~3u);
    if (!((desc >> 47) & 1))
        raise(k_np, new_cs & ~3u);

    bool pop_stack = rpl > m_cpl || m_mode64;
    uint64_t new_sp = 0;
    uint16_t new_ss = 0;
    if (pop_stack) {
        new_sp = read_mem(Seg::SS, at(3), opsize);
        new_ss = uint16_t(read_mem(Seg::SS, at(4), opsize));
    }

    // Flags the current privilege may change.
    uint64_t changeable = k_flag_cf | k_flag_pf | k_flag_af | k_flag_zf | k_flag_sf | k_flag_tf | k_flag_df | k_flag_of
        | k_flag_nt | k_flag_rf | k_flag_ac | k_flag_id;
    if (m_cpl <= iopl)
        changeable |= k_flag_if;
    if (m_cpl == 0)
        changeable |= k_flag_iopl | k_flag_vif | k_flag_vip;
    if (opsize == 2)
        changeable &= 0xffff;
    uint64_t nf = (old_flags & ~changeable) | (new_flags & changeable);

    unsigned old_cpl = m_cpl;
    set_cs_for_transfer(new_cs, desc, rpl);
    m_next_rip = opsize == 8 ? new_ip : new_ip & (opsize == 2 ? 0xffff : 0xffffffff);
    set_flags(nf);
    if (pop_stack) {
        if ((new_ss & ~3u) == 0 && m_s.long_mode_active() && (m_mode64) && rpl != 3) {
            SegmentCache& ss = m_s.segment(Seg::SS);
            ss = SegmentCache {};
            ss.selector = new_ss;
            ss.attr = uint16_t(k_seg_p | k_seg_s | 0x3 | (rpl << k_seg_dpl_shift));
        } else {
            load_segment(Seg::SS, new_ss);
        }
        if (m_mode64)
            m_s.gpr[k_rsp] = new_sp;
        else
            set_stack_pointer(new_sp);
    } else {
        set_stack_pointer(wrap_sp(sp + 3ull * opsize, ss_size));
    }
    if (rpl > old_cpl) {
        for (Seg s : { Seg::ES, Seg::DS, Seg::FS, Seg::GS }) {
            SegmentCache& c = m_s.segment(s);
            bool conforming_code = (c.attr & 0xc) == 0xc && (c.attr & 0x10);
            if ((c.attr & k_seg_p) && !conforming_code && c.dpl() < m_cpl) {
                uint16_t keep_sel = c.selector;
                uint64_t keep_base = c.base;
                c = SegmentCache {};
                c.selector = keep_sel;
                if (m_s.long_mode_active() && (s == Seg::FS || s == Seg::GS))
                    c.base = keep_base;
            }
        }
    }
    request_irq_check();
    end_block();
}

} // namespace kiln::accel::interp
