// Call gates and hardware task switching (Intel SDM vol. 3, 5.8 and 7.3).
#include "accel/interp/private/gates.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

constexpr uint64_t k_desc_busy = 1ull << 41; // TSS type bit 1
constexpr uint64_t k_desc_present = 1ull << 47;

unsigned desc_type(uint64_t desc) { return (desc >> 40) & 0xf; }
unsigned desc_dpl(uint64_t desc) { return (desc >> 45) & 3; }
bool desc_present(uint64_t desc) { return desc & k_desc_present; }
bool desc_is_system(uint64_t desc) { return !((desc >> 44) & 1); }

uint64_t wrap(uint64_t v, unsigned size) { return size == 2 ? v & 0xffff : size == 4 ? v & 0xffffffff : v; }

// The TSS a task gate or task-switching JMP/CALL names must be in the GDT
// and (except for IRET) available.
uint64_t read_target_tss(InterpreterImpl& cpu, uint16_t tss_sel, bool want_busy, uint8_t vector)
{
    if (tss_sel & 4)
        cpu.raise(vector, tss_sel & ~3u);
    uint64_t desc = cpu.read_descriptor(tss_sel, vector);
    unsigned type = desc_type(desc);
    bool ok = !desc_is_system(desc) ? false : want_busy ? (type == 3 || type == 0xb) : (type == 1 || type == 9);
    if (!ok)
        cpu.raise(vector, tss_sel & ~3u);
    if (!desc_present(desc))
        cpu.raise(k_np, tss_sel & ~3u);
    return desc;
}

void set_tss_busy(InterpreterImpl& cpu, uint16_t sel, bool busy)
{
    uint64_t desc = cpu.read_descriptor(sel, k_gp);
    desc = busy ? (desc | k_desc_busy) : (desc & ~k_desc_busy);
    cpu.write_descriptor_high(sel, uint32_t(desc >> 32));
}

// A segment register load of the new task: the checks of a MOV, but the
// fault is #TS(selector) (SDM 7.3, step 13).
void load_task_segment(InterpreterImpl& cpu, Seg seg, uint16_t sel)
{
    try {
        cpu.load_segment(seg, sel);
    } catch (const CpuException& e) {
        if (e.vector == k_gp)
            cpu.raise(k_ts, sel & ~3u);
        throw;
    }
}

void call_gate(InterpreterImpl& cpu, uint16_t gate_sel, uint64_t gate, bool is_call, uint64_t next_rip)
{
    CpuState& s = cpu.state();
    const bool lm = s.long_mode_active();
    const unsigned cpl = cpu.cpl();
    if (desc_dpl(gate) < cpl || desc_dpl(gate) < (gate_sel & 3u))
        cpu.raise(k_gp, gate_sel & ~3u);
    if (!desc_present(gate))
        cpu.raise(k_np, gate_sel & ~3u);
    const bool gate32 = desc_type(gate) & 8;
    uint16_t cs_sel = uint16_t(gate >> 16);
    uint64_t offset = (gate & 0xffff) | ((gate >> 32) & 0xffff0000);
    unsigned params = (gate >> 32) & 0x1f;
    if (lm) {
        // 16-byte gate: the upper half holds offset bits 63:32 and a zero type.
        uint64_t hi = cpu.read_descriptor(uint16_t(gate_sel + 8), k_gp);
        if ((hi >> 40) & 0x1f)
            cpu.raise(k_gp, gate_sel & ~3u);
        offset |= (hi & 0xffffffff) << 32;
        params = 0;
    } else if (!gate32) {
        offset &= 0xffff;
    }
    if ((cs_sel & ~3u) == 0)
        cpu.raise_gp0();
    uint64_t cs_desc = cpu.read_descriptor(cs_sel, k_gp);
    SegmentCache cs = cpu.cache_from_descriptor(cs_sel, cs_desc);
    const unsigned type = cs.attr & 0xf;
    const bool conforming = type & 4;
    if (!(cs.attr & k_seg_s) || !(type & 8) || cs.dpl() > cpl || (!is_call && !conforming && cs.dpl() != cpl))
        cpu.raise(k_gp, cs_sel & ~3u);
    if (!cs.present())
        cpu.raise(k_np, cs_sel & ~3u);
    if (lm && (!(cs.attr & k_seg_l) || (cs.attr & k_seg_db)))
        cpu.raise(k_gp, cs_sel & ~3u);
    if (!lm && offset > cs.limit)
        cpu.raise_gp0();

    const unsigned push_size = lm ? 8 : gate32 ? 4 : 2;
    const bool inner = is_call && !conforming && cs.dpl() < cpl;
    const unsigned new_cpl = inner ? cs.dpl() : cpl;
    const uint16_t old_cs = s.segment(Seg::CS).selector;

    if (!inner) {
        if (is_call) {
            cpu.push(old_cs, push_size);
            cpu.push(next_rip, push_size);
        }
        cpu.set_cs_for_transfer(cs_sel, cs_desc, new_cpl);
        cpu.set_next_rip(offset);
        cpu.end_block();
        return;
    }

    // Call to an inner privilege level: the new stack comes from the TSS.
    SegmentCache ss;
    uint64_t sp;
    unsigned ss_size;
    if (lm) {
        uint64_t off = 4 + new_cpl * 8;
        if (off + 7 > s.tr.limit)
            cpu.raise(k_ts, s.tr.selector & ~3u);
        sp = cpu.read_linear(s.tr.base + off, 8);
        ss.selector = uint16_t(new_cpl);
        ss.attr = uint16_t(k_seg_p | k_seg_s | 0x3 | (new_cpl << k_seg_dpl_shift));
        ss_size = 8;
    } else {
        bool tss32 = s.tr.attr & 8;
        uint64_t sp_off = tss32 ? 4 + new_cpl * 8 : 2 + new_cpl * 4;
        unsigned sp_bytes = tss32 ? 4 : 2;
        if (sp_off + sp_bytes + 1 > s.tr.limit)
            cpu.raise(k_ts, s.tr.selector & ~3u);
        sp = cpu.read_linear(s.tr.base + sp_off, sp_bytes);
        uint16_t ss_sel = uint16_t(cpu.read_linear(s.tr.base + sp_off + sp_bytes, 2));
        if ((ss_sel & ~3u) == 0 || (ss_sel & 3) != new_cpl)
            cpu.raise(k_ts, ss_sel & ~3u);
        uint64_t ss_desc = cpu.read_descriptor(ss_sel, k_ts);
        ss = cpu.cache_from_descriptor(ss_sel, ss_desc);
        if (!(ss.attr & k_seg_s) || (ss.attr & 8) || !(ss.attr & 2) || ss.dpl() != new_cpl)
            cpu.raise(k_ts, ss_sel & ~3u);
        if (!ss.present())
            cpu.raise(k_ss, ss_sel & ~3u);
        ss_size = (ss.attr & k_seg_db) ? 4 : 2;
    }
    // Parameters from the old stack, read before anything changes.
    const SegmentCache old_ss = s.segment(Seg::SS);
    const uint64_t old_sp = cpu.stack_pointer();
    const unsigned old_size = cpu.stack_size();
    uint64_t param[31];
    for (unsigned i = 0; i < params; i++)
        param[i] = cpu.read_mem(Seg::SS, wrap(old_sp + i * push_size, old_size), push_size);
    // Build the new frame, then commit.
    auto push_new = [&](uint64_t v) {
        sp = wrap(sp - push_size, ss_size);
        cpu.write_linear(lm ? sp : ((ss.base + sp) & 0xffffffff), push_size, v, true);
    };
    push_new(old_ss.selector);
    push_new(s.gpr[k_rsp]);
    for (unsigned i = params; i-- > 0;)
        push_new(param[i]);
    push_new(old_cs);
    push_new(next_rip);
    cpu.set_cs_for_transfer(cs_sel, cs_desc, new_cpl);
    s.segment(Seg::SS) = ss;
    if (ss_size == 2)
        s.gpr[k_rsp] = (s.gpr[k_rsp] & ~0xffffull) | (sp & 0xffff);
    else
        s.gpr[k_rsp] = sp;
    cpu.set_next_rip(offset);
    cpu.end_block();
}

} // namespace

void far_transfer_system(
    InterpreterImpl& cpu, uint16_t selector, uint64_t desc, bool is_call, unsigned opsize, uint64_t next_rip)
{
    (void)opsize; // the gate or TSS decides the operand size
    CpuState& s = cpu.state();
    const unsigned type = desc_type(desc);
    const unsigned cpl = cpu.cpl();
    if (s.long_mode_active()) {
        if (type != 0xc)
            cpu.raise(k_gp, selector & ~3u);
        call_gate(cpu, selector, desc, is_call, next_rip);
        return;
    }
    const TaskSwitchReason why = is_call ? TaskSwitchReason::Call : TaskSwitchReason::Jump;
    switch (type) {
    case 0x4:
    case 0xc:
        call_gate(cpu, selector, desc, is_call, next_rip);
        return;
    case 0x5: { // task gate
        if (desc_dpl(desc) < cpl || desc_dpl(desc) < (selector & 3u))
            cpu.raise(k_gp, selector & ~3u);
        if (!desc_present(desc))
            cpu.raise(k_np, selector & ~3u);
        uint16_t tss_sel = uint16_t(desc >> 16);
        uint64_t tss = read_target_tss(cpu, tss_sel, false, k_gp);
        task_switch(cpu, tss_sel, tss, why, next_rip);
        return;
    }
    case 0x1:
    case 0x9: // available TSS
        if (desc_dpl(desc) < cpl || desc_dpl(desc) < (selector & 3u) || (selector & 4))
            cpu.raise(k_gp, selector & ~3u);
        if (!desc_present(desc))
            cpu.raise(k_np, selector & ~3u);
        task_switch(cpu, selector, desc, why, next_rip);
        return;
    default: // busy TSS, LDT, interrupt/trap gates, reserved
        cpu.raise(k_gp, selector & ~3u);
    }
}

void task_gate_event(InterpreterImpl& cpu, uint64_t gate, uint32_t gate_error, uint64_t return_rip, bool has_error,
    uint32_t error)
{
    (void)gate_error;
    uint16_t tss_sel = uint16_t(gate >> 16);
    uint64_t tss = read_target_tss(cpu, tss_sel, false, k_ts);
    task_switch(cpu, tss_sel, tss, TaskSwitchReason::Interrupt, return_rip, has_error, error);
}

void task_return(InterpreterImpl& cpu, uint64_t next_rip)
{
    CpuState& s = cpu.state();
    uint16_t link = uint16_t(cpu.read_linear(s.tr.base, 2));
    uint64_t tss = read_target_tss(cpu, link, true, k_ts);
    task_switch(cpu, link, tss, TaskSwitchReason::Iret, next_rip);
}

void task_switch(InterpreterImpl& cpu, uint16_t selector, uint64_t desc, TaskSwitchReason why, uint64_t return_rip,
    bool has_error, uint32_t error)
{
    CpuState& s = cpu.state();
    const bool new32 = desc_type(desc) & 8;
    SegmentCache ntr = cpu.cache_from_descriptor(selector, desc);
    if (ntr.limit < (new32 ? 0x67u : 0x2bu))
        cpu.raise(k_ts, selector & ~3u);
    const bool old32 = s.tr.attr & 8;
    if (s.tr.limit < (old32 ? 0x67u : 0x2bu))
        cpu.raise(k_ts, s.tr.selector & ~3u);

    // Read the whole new state first: a fault here leaves the old task intact.
    const uint64_t nb = ntr.base;
    uint64_t cr3 = 0, eip, eflags, gpr[8];
    uint16_t sel[6] = {}, ldt;
    bool debug_trap = false;
    if (new32) {
        cr3 = cpu.read_linear(nb + 0x1c, 4);
        eip = cpu.read_linear(nb + 0x20, 4);
        eflags = cpu.read_linear(nb + 0x24, 4);
        for (unsigned i = 0; i < 8; i++)
            gpr[i] = cpu.read_linear(nb + 0x28 + 4 * i, 4);
        for (unsigned i = 0; i < 6; i++)
            sel[i] = uint16_t(cpu.read_linear(nb + 0x48 + 4 * i, 2));
        ldt = uint16_t(cpu.read_linear(nb + 0x60, 2));
        debug_trap = cpu.read_linear(nb + 0x64, 2) & 1; // the T bit
    } else {
        eip = cpu.read_linear(nb + 0x0e, 2);
        eflags = cpu.read_linear(nb + 0x10, 2);
        for (unsigned i = 0; i < 8; i++)
            gpr[i] = (s.gpr[i] & ~0xffffull) | cpu.read_linear(nb + 0x12 + 2 * i, 2);
        for (unsigned i = 0; i < 4; i++)
            sel[i] = uint16_t(cpu.read_linear(nb + 0x22 + 2 * i, 2));
        ldt = uint16_t(cpu.read_linear(nb + 0x2a, 2));
    }

    // Save the old task (IRET saves EFLAGS with NT clear).
    uint64_t old_flags = cpu.flags();
    if (why == TaskSwitchReason::Iret)
        old_flags &= ~k_flag_nt;
    const uint64_t ob = s.tr.base;
    if (old32) {
        cpu.write_linear(ob + 0x20, 4, return_rip);
        cpu.write_linear(ob + 0x24, 4, old_flags);
        for (unsigned i = 0; i < 8; i++)
            cpu.write_linear(ob + 0x28 + 4 * i, 4, s.gpr[i]);
        for (unsigned i = 0; i < 6; i++)
            cpu.write_linear(ob + 0x48 + 4 * i, 2, s.seg[i].selector);
    } else {
        cpu.write_linear(ob + 0x0e, 2, return_rip);
        cpu.write_linear(ob + 0x10, 2, old_flags);
        for (unsigned i = 0; i < 8; i++)
            cpu.write_linear(ob + 0x12 + 2 * i, 2, s.gpr[i]);
        for (unsigned i = 0; i < 4; i++)
            cpu.write_linear(ob + 0x22 + 2 * i, 2, s.seg[i].selector);
    }
    if (why == TaskSwitchReason::Jump || why == TaskSwitchReason::Iret)
        set_tss_busy(cpu, s.tr.selector, false);
    if (why == TaskSwitchReason::Call || why == TaskSwitchReason::Interrupt) {
        eflags |= k_flag_nt;
        cpu.write_linear(nb, 2, s.tr.selector);
    }
    if (why != TaskSwitchReason::Iret)
        set_tss_busy(cpu, selector, true);

    // Commit: from here on, faults belong to the new task.
    s.tr = ntr;
    s.tr.attr |= 2; // busy
    s.cr0 |= k_cr0_ts;
    if (new32 && s.paging())
        cpu.write_cr3(cr3);
    for (unsigned i = 0; i < 8; i++)
        s.gpr[i] = new32 ? (gpr[i] & 0xffffffff) : gpr[i];
    cpu.set_flags(eflags | k_flag_fixed1);
    s.rip = eip;
    cpu.end_block();
    cpu.request_irq_check();
    // Selectors first (so a later fault saves them), then the descriptors.
    for (unsigned i = 0; i < 6; i++)
        s.seg[i].selector = sel[i];
    if ((ldt & ~3u) == 0) {
        s.ldtr = SegmentCache {};
        s.ldtr.selector = ldt;
    } else {
        if (ldt & 4)
            cpu.raise(k_ts, ldt & ~3u);
        uint64_t ldesc = cpu.read_descriptor(ldt, k_ts);
        if (!desc_is_system(ldesc) || desc_type(ldesc) != 2)
            cpu.raise(k_ts, ldt & ~3u);
        if (!desc_present(ldesc))
            cpu.raise(k_ts, ldt & ~3u);
        s.ldtr = cpu.cache_from_descriptor(ldt, ldesc);
    }
    if (eflags & k_flag_vm) { // a virtual-8086 task
        cpu.update_mode();
        for (unsigned i = 0; i < 6; i++)
            cpu.load_segment_real(Seg(i), sel[i]);
        cpu.update_mode();
    } else {
        uint16_t cs_sel = sel[unsigned(Seg::CS)];
        if ((cs_sel & ~3u) == 0)
            cpu.raise(k_ts, 0);
        uint64_t cs_desc = cpu.read_descriptor(cs_sel, k_ts);
        unsigned t = desc_type(cs_desc), rpl = cs_sel & 3;
        bool conforming = t & 4;
        if (desc_is_system(cs_desc) || !(t & 8) || (conforming ? desc_dpl(cs_desc) > rpl : desc_dpl(cs_desc) != rpl))
            cpu.raise(k_ts, cs_sel & ~3u);
        if (!desc_present(cs_desc))
            cpu.raise(k_np, cs_sel & ~3u);
        cpu.set_cs_for_transfer(cs_sel, cs_desc, rpl);
        load_task_segment(cpu, Seg::SS, sel[unsigned(Seg::SS)]);
        for (Seg sg : { Seg::ES, Seg::DS, Seg::FS, Seg::GS })
            load_task_segment(cpu, sg, sel[unsigned(sg)]);
    }
    if (!new32 || !(s.segment(Seg::CS).attr & k_seg_db))
        s.rip = eip & 0xffff;
    cpu.set_next_rip(s.rip);
    if (has_error)
        cpu.push(error, new32 ? 4 : 2);
    // The new TSS's T bit: a #DB trap (DR6.BT) once the switch is complete,
    // before the new task's first instruction.
    if (debug_trap) {
        s.dr[6] |= 1u << 15;
        cpu.deliver(k_db, InterpreterImpl::EventKind::Exception, false, 0, s.rip);
    }
}

} // namespace kiln::accel::interp
