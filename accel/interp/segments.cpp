// Segment register loads with the protected-mode checks (Intel SDM vol. 3,
// 5.4-5.8), far JMP/CALL/RET between code segments.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/gates.h"

namespace kiln::accel::interp {

using namespace x86;

SegmentCache InterpreterImpl::cache_from_descriptor(uint16_t selector, uint64_t desc) const
{
    SegmentCache c;
    c.selector = selector;
    c.base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24);
    uint32_t limit = uint32_t((desc & 0xffff) | (((desc >> 48) & 0xf) << 16));
    if (desc & (1ull << 55))
        limit = (limit << 12) | 0xfff;
    c.limit = limit;
    c.attr = uint16_t(((desc >> 40) & 0xff) | (((desc >> 52) & 0xf) << 12));
    return c;
}

uint64_t InterpreterImpl::read_descriptor(uint16_t selector, uint8_t fault_vector)
{
    uint64_t index = selector & ~7u;
    if (selector & 4) {
        if (!(m_s.ldtr.attr & k_seg_p) || index + 7 > m_s.ldtr.limit)
            raise(fault_vector, selector & ~3u);
        return read_linear(m_s.ldtr.base + index, 8);
    }
    if (index + 7 > m_s.gdtr.limit)
        raise(fault_vector, selector & ~3u);
    return read_linear(m_s.gdtr.base + index, 8);
}

void InterpreterImpl::write_descriptor_high(uint16_t selector, uint32_t high)
{
    uint64_t index = selector & ~7u;
    uint64_t base = (selector & 4) ? m_s.ldtr.base : m_s.gdtr.base;
    write_linear(base + index + 4, 4, high);
}

void InterpreterImpl::load_segment_real(Seg seg, uint16_t selector)
{
    SegmentCache& c = m_s.segment(seg);
    c.selector = selector;
    c.base = uint64_t(selector) << 4;
    // Real mode keeps the cached limit (so "unreal mode" works) but the
    // segment becomes usable.
    if (!(c.attr & k_seg_p))
        c.attr = k_seg_p | k_seg_s | 0x3;
    if (m_s.v8086()) {
        c.limit = 0xffff;
        c.attr = k_seg_p | k_seg_s | 0x3 | (3u << k_seg_dpl_shift) | (seg == Seg::CS ? 0x8 : 0);
    }
    if (seg == Seg::CS)
        update_mode();
}

void InterpreterImpl::load_segment(Seg seg, uint16_t selector)
{
    if (!m_s.protected_mode() || m_s.v8086()) {
        load_segment_real(seg, selector);
        return;
    }
    SegmentCache& c = m_s.segment(seg);
    unsigned rpl = selector & 3;
    if ((selector & ~3u) == 0) {
        if (seg == Seg::SS && !(m_mode64 && m_cpl != 3 && rpl == m_cpl))
            raise_gp0();
        c = SegmentCache {};
        c.selector = selector;
        if (seg == Seg::SS)
            c.attr = uint16_t(k_seg_s | 0x3 | (m_cpl << k_seg_dpl_shift) | k_seg_db) | k_seg_p;
        return;
    }
    uint64_t desc = read_descriptor(selector, k_gp);
    SegmentCache nc = cache_from_descriptor(selector, desc);
    unsigned dpl = nc.dpl();
    unsigned type = nc.attr & k_seg_type_mask;
    bool code = type & 0x8;
    if (!(nc.attr & k_seg_s))
        raise(k_gp, selector & ~3u);
    if (seg == Seg::SS) {
        if (rpl != m_cpl || dpl != m_cpl || code || !(type & 0x2))
            raise(k_gp, selector & ~3u);
        if (!nc.present())
            raise(k_ss, selector & ~3u);
    } else {
        if (code && !(type & 0x2))
            raise(k_gp, selector & ~3u);
        bool conforming = code && (type & 0x4);
        if (!conforming && (rpl > dpl || m_cpl > dpl))
            raise(k_gp, selector & ~3u);
        if (!nc.present())
            raise(k_np, selector & ~3u);
    }
    if (!(desc & (1ull << 40))) {
        write_descriptor_high(selector, uint32_t(desc >> 32) | (1u << 8));
        nc.attr |= k_seg_accessed;
    }
    if (m_mode64 && (seg == Seg::FS || seg == Seg::GS))
        nc.base &= 0xffffffff;
    c = nc;
}

void InterpreterImpl::set_cs_for_transfer(uint16_t selector, uint64_t desc, unsigned new_cpl)
{
    if (!(desc & (1ull << 40))) {
        write_descriptor_high(selector, uint32_t(desc >> 32) | (1u << 8));
        desc |= 1ull << 40;
    }
    SegmentCache c = cache_from_descriptor(uint16_t((selector & ~3u) | new_cpl), desc);
    m_s.segment(Seg::CS) = c;
    m_cpl = new_cpl;
    update_mode();
}

namespace {

// Checks a code-segment descriptor as the target of a far JMP/CALL/RET.
void check_code_target(InterpreterImpl& cpu, uint16_t selector, uint64_t desc, unsigned cpl, bool is_return)
{
    unsigned type = (desc >> 40) & 0xf;
    bool s = (desc >> 44) & 1;
    unsigned dpl = (desc >> 45) & 3;
    unsigned rpl = selector & 3;
    if (!s || !(type & 0x8))
        cpu.raise(k_gp, selector & ~3u);
    bool conforming = type & 0x4;
    if (is_return) {
        if (rpl < cpl || (conforming ? dpl > rpl : dpl != rpl))
            cpu.raise(k_gp, selector & ~3u);
    } else if (conforming ? dpl > cpl : (rpl > cpl || dpl != cpl)) {
        cpu.raise(k_gp, selector & ~3u);
    }
    if (!((desc >> 47) & 1))
        cpu.raise(k_np, selector & ~3u);
}

} // namespace

void InterpreterImpl::far_jump(uint16_t selector, uint64_t offset, bool is_call, unsigned opsize, uint64_t next_rip)
{
    if (!m_s.protected_mode() || m_s.v8086()) {
        if (is_call) {
            push(m_s.segment(Seg::CS).selector, opsize);
            push(next_rip, opsize);
        }
        load_segment_real(Seg::CS, selector);
        m_next_rip = offset & (opsize == 2 ? 0xffff : 0xffffffff);
        end_block();
        return;
    }
    if ((selector & ~3u) == 0)
        raise_gp0();
    uint64_t desc = read_descriptor(selector, k_gp);
    if (!((desc >> 44) & 1)) { // call gate, task gate or TSS
        far_transfer_system(*this, selector, desc, is_call, opsize, next_rip);
        return;
    }
    check_code_target(*this, selector, desc, m_cpl, false);
    SegmentCache target = cache_from_descriptor(selector, desc);
    bool target64 = m_s.long_mode_active() && (target.attr & k_seg_l);
    if (!target64 && offset > target.limit)
        raise_gp0();
    if (is_call) {
        uint16_t old_cs = m_s.segment(Seg::CS).selector;
        push(old_cs, opsize);
        push(next_rip, opsize);
    }
    set_cs_for_transfer(selector, desc, m_cpl);
    m_next_rip = opsize == 2 ? offset & 0xffff : (opsize == 4 ? offset & 0xffffffff : offset);
    end_block();
}

void InterpreterImpl::far_return(unsigned opsize, uint16_t pop_bytes)
{
    uint64_t sp = stack_pointer();
    unsigned ss_size = stack_size();
    auto sp_add = [&](uint64_t v, uint64_t n) {
        v += n;
        return ss_size == 2 ? (v & 0xffff) : ss_size == 4 ? (v & 0xffffffff) : v;
    };
    uint64_t new_rip = read_mem(Seg::SS, sp, opsize);
    uint16_t new_cs = uint16_t(read_mem(Seg::SS, sp_add(sp, opsize), opsize));
    if (!m_s.protected_mode() || m_s.v8086()) {
        load_segment_real(Seg::CS, new_cs);
        m_next_rip = new_rip & (opsize == 2 ? 0xffff : 0xffffffff);
        set_stack_pointer(sp_add(sp, 2 * opsize + pop_bytes));
        end_block();
        return;
    }
    if ((new_cs & ~3u) == 0)
        raise_gp0();
    uint64_t desc = read_descriptor(new_cs, k_gp);
    check_code_target(*this, new_cs, desc, m_cpl, true);
    unsigned rpl = new_cs & 3;
    if (rpl == m_cpl) {
        set_cs_for_transfer(new_cs, desc, m_cpl);
        m_next_rip = opsize == 8 ? new_rip : new_rip & (opsize == 2 ? 0xffff : 0xffffffff);
        set_stack_pointer(sp_add(sp, 2 * opsize + pop_bytes));
        end_block();
        return;
    }
    // Return to an outer privilege level: SS:rSP follow on the old stack.
    uint64_t after = sp_add(sp, 2 * opsize + pop_bytes);
    uint64_t new_sp = read_mem(Seg::SS, after, opsize);
    uint16_t new_ss = uint16_t(read_mem(Seg::SS, sp_add(after, opsize), opsize));
    set_cs_for_transfer(new_cs, desc, rpl);
    m_next_rip = opsize == 8 ? new_rip : new_rip & (opsize == 2 ? 0xffff : 0xffffffff);
    load_segment(Seg::SS, new_ss);
    set_stack_pointer(new_sp + pop_bytes);
    for (Seg s : { Seg::ES, Seg::DS, Seg::FS, Seg::GS }) {
        SegmentCache& c = m_s.segment(s);
        unsigned type = c.attr & 0xf;
        bool conforming_code = (type & 0xc) == 0xc;
        if ((c.attr & k_seg_p) && !conforming_code && c.dpl() < m_cpl) {
            c = SegmentCache {};
        }
    }
    end_block();
}

} // namespace kiln::accel::interp
