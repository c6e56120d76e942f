// Control flow and the stack: Jcc/JMP/CALL/RET (near and far), LOOP/JCXZ,
// PUSH/POP in all forms, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE, INT n/INT3/
// INTO/INT1, IRET, segment register moves and far-pointer loads.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

} // namespace

static void exec_popf(InterpreterImpl& cpu, unsigned size)
{
    CpuState& s = cpu.state();
    uint64_t old = cpu.flags();
    unsigned iopl = (old & k_flag_iopl) >> 12;
    if (s.v8086() && iopl < 3)
        cpu.raise_gp0();
    uint64_t v = cpu.pop(size);
    uint64_t changeable = k_flag_cf | k_flag_pf | k_flag_af | k_flag_zf | k_flag_sf | k_flag_tf | k_flag_df | k_flag_of
        | k_flag_nt | k_flag_ac | k_flag_id;
    if (!s.protected_mode() || cpu.cpl() == 0)
        changeable |= k_flag_iopl | k_flag_if;
    else if (cpu.cpl() <= iopl)
        changeable |= k_flag_if;
    if (s.v8086())
        changeable &= ~k_flag_iopl;
    if (size == 2)
        changeable &= 0xffff;
    uint64_t nf = (old & ~changeable) | (v & changeable);
    bool if_rose = !(old & k_flag_if) && (nf & k_flag_if);
    cpu.set_flags(nf);
    if (if_rose)
        cpu.request_irq_check();
}

bool InterpreterImpl::exec_control(const DecodedInsn& d)
{
    const unsigned op = d.op;
    const unsigned size = d.opsize;
    CpuState& s = m_s;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) {
        if (cond(op & 0xf))
            jump_near(m_next_rip + uint64_t(sign_extend(d.imm, d.imm_size)));
        return true;
    }
    if (op >= 0x50 && op <= 0x57) {
        unsigned r = (op & 7) | ((d.rex & 1) << 3);
        push(reg(r, size), size);
        return true;
    }
    if (op >= 0x58 && op <= 0x5f) {
        unsigned r = (op & 7) | ((d.rex & 1) << 3);
        uint64_t v = pop(size);
        set_reg(r, size, v);
        return true;
    }
    switch (op) {
    case 0xeb:
    case 0xe9:
        jump_near(m_next_rip + uint64_t(sign_extend(d.imm, d.imm_size)));
        return true;
    case 0xe8: {
        uint64_t target = m_next_rip + uint64_t(sign_extend(d.imm, d.imm_size));
        uint64_t ret = m_next_rip;
        push(ret, size);
        jump_near(target);
        return true;
    }
    case 0xc3:
    case 0xc2: {
        uint64_t sp = stack_pointer();
        uint64_t target = read_mem(Seg::SS, sp, size);
        jump_near(target);
        set_stack_pointer(sp + size + (op == 0xc2 ? d.imm : 0));
        return true;
    }
    case 0xcb:
        far_return(size, 0);
        return true;
    case 0xca:
        far_return(size, uint16_t(d.imm));
        return true;
    case 0x9a:
    case 0xea: {
        uint64_t off = d.imm;
        far_jump(d.imm2, off, op == 0x9a, size, m_next_rip);
        return true;
    }
    case 0xe0:
    case 0xe1:
    case 0xe2: { // LOOPNE / LOOPE / LOOP
        uint64_t m = addr_mask(d.addrsize);
        uint64_t c = (s.gpr[k_rcx] - 1) & m;
        set_reg(k_rcx, d.addrsize, c);
        bool take = c != 0;
        if (op == 0xe0)
            take = take && !cond(4);
        else if (op == 0xe1)
            take = take && cond(4);
        if (take)
            jump_near(m_next_rip + uint64_t(sign_extend(d.imm, 1)));
        return true;
    }
    case 0xe3: // JCXZ / JECXZ / JRCXZ
        if ((s.gpr[k_rcx] & addr_mask(d.addrsize)) == 0)
            jump_near(m_next_rip + uint64_t(sign_extend(d.imm, 1)));
        return true;
    case 0xff: {
        unsigned r = d.reg & 7;
        switch (r) {
        case 2: { // CALL near indirect
            unsigned sz = m_mode64 ? 8 : size;
            uint64_t target = read_rm(d, sz);
            push(m_next_rip, sz);
            jump_near(target);
            return true;
        }
        case 4: { // JMP near indirect
            unsigned sz = m_mode64 ? 8 : size;
            jump_near(read_rm(d, sz));
            return true;
        }
        case 3:
        case 5: { // CALL/JMP far indirect: m16:16/32/64
            if (d.mod == 3)
                raise_ud();
            Seg seg = operand_seg(d);
            uint64_t ea = effective_address(d);
            uint64_t off = read_mem(seg, ea, size);
            uint16_t sel = uint16_t(read_mem(seg, (ea + size) & addr_mask(d.addrsize), 2));
            far_jump(sel, off, r == 3, size, m_next_rip);
            return true;
        }
        case 6: { // PUSH r/m
            unsigned sz = m_mode64 ? (d.has_66() ? 2 : 8) : size;
            push(read_rm(d, sz), sz);
            return true;
        }
        default:
            raise_ud();
        }
    }
    case 0x8f: { // POP r/m
        if ((d.reg & 7) != 0)
            raise_ud();
        uint64_t old_sp = s.gpr[k_rsp];
        uint64_t v = pop(size);
        try {
            write_rm(d, size, v); // the address uses the incremented rSP
        } catch (...) {
            s.gpr[k_rsp] = old_sp;
            throw;
        }
        return true;
    }
    case 0x68:
    case 0x6a:
        push(uint64_t(sign_extend(d.imm, d.imm_size)), size);
        return true;
    case 0x06:
    case 0x0e:
    case 0x16:
    case 0x1e: // PUSH ES/CS/SS/DS
        push(s.seg[op >> 3].selector, size);
        return true;
    case 0x1a0:
    case 0x1a8: // PUSH FS/GS
        push(s.seg[op == 0x1a0 ? 4 : 5].selector, size);
        return true;
    case 0x07:
    case 0x17:
    case 0x1f:
    case 0x1a1:
    case 0x1a9: { // POP Sreg
        Seg seg = op == 0x07 ? Seg::ES : op == 0x17 ? Seg::SS : op == 0x1f ? Seg::DS : op == 0x1a1 ? Seg::FS : Seg::GS;
        uint64_t sp = stack_pointer();
        uint16_t sel = uint16_t(read_mem(Seg::SS, sp, size));
        load_segment(seg, sel);
        set_stack_pointer(sp + size);
        if (seg == Seg::SS)
            set_interrupt_shadow(PendingEvents::k_shadow_mov_ss);
        return true;
    }
    case 0x60: { // PUSHA
        uint64_t sp = reg(k_rsp, size);
        for (unsigned r = 0; r < 8; r++)
            push(r == k_rsp ? sp : reg(r, size), size);
        return true;
    }
    case 0x61: { // POPA
        for (int r = 7; r >= 0; r--) {
            uint64_t v = pop(size);
            if (r != k_rsp)
                set_reg(unsigned(r), size, v);
        }
        return true;
    }
    case 0x9c: { // PUSHF
        uint64_t f = flags();
        if (s.v8086() && ((f & k_flag_iopl) >> 12) < 3)
            raise_gp0();
        push(f & ~(k_flag_vm | k_flag_rf), size);
        return true;
    }
    case 0x9d:
        exec_popf(*this, size);
        return true;
    case 0xc8: { // ENTER
        unsigned level = d.imm2 & 31;
        uint64_t alloc = d.imm & 0xffff;
        unsigned ss = stack_size();
        push(reg(k_rbp, size), size);
        uint64_t frame = stack_pointer();
        if (level > 0) {
            uint64_t bp = reg(k_rbp, ss);
            for (unsigned i = 1; i < level; i++) {
                bp = (bp - size) & addr_mask(ss);
                push(read_mem(Seg::SS, bp, size), size);
            }
            push(frame, size);
        }
        uint64_t new_sp = (stack_pointer() - alloc) & addr_mask(ss);
        // Touch the lowest byte so a bad frame faults before rSP changes.
        if (alloc)
            read_mem(Seg::SS, new_sp, 1);
        set_reg(k_rbp, size, frame);
        set_stack_pointer(new_sp);
        return true;
    }
    case 0xc9: { // LEAVE
        set_stack_pointer(reg(k_rbp, stack_size()));
        uint64_t v = pop(size);
        set_reg(k_rbp, size, v);
        return true;
    }
    case 0xcc:
        deliver(k_bp, EventKind::SoftwareException, false, 0, m_next_rip);
        return true;
    case 0xcd:
        deliver(uint8_t(d.imm), EventKind::Software, false, 0, m_next_rip);
        return true;
    case 0xce:
        if (cond(0))
            deliver(k_of, EventKind::SoftwareException, false, 0, m_next_rip);
        return true;
    case 0xf1:
        deliver(k_db, EventKind::SoftwareException, false, 0, m_next_rip);
        return true;
    case 0xcf:
        iret(size);
        return true;
    case 0x8c: { // MOV r/m, Sreg
        unsigned sr = d.reg & 7;
        if (sr > 5)
            raise_ud();
        uint16_t sel = s.seg[sr].selector;
        if (d.mod == 3)
            set_reg(d.rm, size == 2 ? 2 : size, sel);
        else
            write_rm(d, 2, sel);
        return true;
    }
    case 0x8e: { // MOV Sreg, r/m
        unsigned sr = d.reg & 7;
        if (sr > 5 || sr == 1)
            raise_ud();
        uint16_t sel = uint16_t(read_rm(d, 2));
        load_segment(Seg(sr), sel);
        if (sr == 2)
            set_interrupt_shadow(PendingEvents::k_shadow_mov_ss);
        return true;
    }
    case 0xc4:
    case 0xc5:
    case 0x1b2:
    case 0x1b4:
    case 0x1b5: { // LES LDS LSS LFS LGS
        if (d.mod == 3)
            raise_ud();
        Seg target = op == 0xc4 ? Seg::ES
            : op == 0xc5        ? Seg::DS
            : op == 0x1b2       ? Seg::SS
            : op == 0x1b4       ? Seg::FS
                                : Seg::GS;
        Seg seg = operand_seg(d);
        uint64_t ea = effective_address(d);
        uint64_t off = read_mem(seg, ea, size);
        uint16_t sel = uint16_t(read_mem(seg, (ea + size) & addr_mask(d.addrsize), 2));
        load_segment(target, sel);
        set_reg(d.reg, size, off);
        return true;
    }
    default:
        return false;
    }
}

} // namespace kiln::accel::interp
