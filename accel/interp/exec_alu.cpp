// Integer data movement and arithmetic: MOV forms, ALU group, INC/DEC,
// NEG/NOT, MUL/IMUL/DIV/IDIV, sign/zero extension, XCHG/XADD/CMPXCHG,
// CMOVcc/SETcc, BCD adjustments, LAHF/SAHF, flag-bit instructions.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

// ALU operation `op` (ADD OR ADC SBB AND SUB XOR CMP) on a and b; returns
// the result and records flags. CMP's result is not written by callers.
static uint64_t alu_op(InterpreterImpl& cpu, unsigned op, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t m = size_mask(size);
    uint64_t r;
    LazyFlags& f = cpu.lazy();
    switch (op) {
    case 0:
        r = (a + b) & m;
        f.set(FlagOp::Add, size, r, a, b);
        return r;
    case 1:
        r = (a | b) & m;
        f.set(FlagOp::Logic, size, r, 0, 0);
        return r;
    case 2: {
        bool c = cpu.lazy().cf(cpu.state().rflags);
        r = (a + b + c) & m;
        f.set(FlagOp::Adc, size, r, a, b, c);
        return r;
    }
    case 3: {
        bool c = cpu.lazy().cf(cpu.state().rflags);
        r = (a - b - c) & m;
        f.set(FlagOp::Sbb, size, r, a, b, c);
        return r;
    }
    case 4:
        r = a & b & m;
        f.set(FlagOp::Logic, size, r, 0, 0);
        return r;
    case 5:
    case 7:
        r = (a - b) & m;
        f.set(FlagOp::Sub, size, r, a, b);
        return r;
    default:
        r = (a ^ b) & m;
        f.set(FlagOp::Logic, size, r, 0, 0);
        return r;
    }
}

// Two- and three-operand IMUL: the product truncated to `size`, with
// CF=OF set when it did not fit (SF/ZF/PF from the result, as Intel cores do).
static uint64_t imul_truncated(InterpreterImpl& cpu, uint64_t a, uint64_t b, unsigned size)
{
    uint64_t lo;
    bool overflow;
    if (size == 8) {
        __int128 p = __int128(int64_t(a)) * int64_t(b);
        lo = uint64_t(p);
        overflow = p != __int128(int64_t(lo));
    } else {
        int64_t p = sign_extend(a, size) * sign_extend(b, size);
        lo = uint64_t(p) & size_mask(size);
        overflow = p != sign_extend(lo, size);
    }
    uint64_t f = overflow ? (k_flag_cf | k_flag_of) : 0;
    if ((lo >> (size * 8 - 1)) & 1)
        f |= k_flag_sf;
    if (lo == 0)
        f |= k_flag_zf;
    if (parity_even(lo))
        f |= k_flag_pf;
    cpu.set_arith_flags(f);
    return lo;
}

static void exec_group3(InterpreterImpl& cpu, const DecodedInsn& d, unsigned size)
{
    uint64_t m = size_mask(size);
    CpuState& s = cpu.state();
    switch (d.reg & 7) {
    case 0:
    case 1: // TEST r/m, imm
        alu_op(cpu, 4, size, cpu.read_rm(d, size), uint64_t(sign_extend(d.imm, d.imm_size)) & size_mask(size));
        return;
    case 2: // NOT
        cpu.write_rm(d, size, ~cpu.read_rm(d, size) & m);
        return;
    case 3: { // NEG
        uint64_t v = cpu.read_rm(d, size);
        uint64_t r = (0 - v) & m;
        cpu.write_rm(d, size, r);
        cpu.lazy().set(FlagOp::Neg, size, r, 0, v);
        return;
    }
    case 4: // MUL
    case 5: { // IMUL
        bool is_signed = (d.reg & 7) == 5;
        uint64_t src = cpu.read_rm(d, size);
        uint64_t lo, hi;
        bool overflow;
        if (size == 8) {
            if (is_signed) {
                __int128 p = __int128(int64_t(s.gpr[k_rax])) * int64_t(src);
                lo = uint64_t(p);
                hi = uint64_t(p >> 64);
                overflow = p != __int128(int64_t(lo));
            } else {
                unsigned __int128 p = (unsigned __int128)s.gpr[k_rax] * src;
                lo = uint64_t(p);
                hi = uint64_t(p >> 64);
                overflow = hi != 0;
            }
        } else {
            unsigned bits = size * 8;
            uint64_t a = cpu.reg(k_rax, size);
            uint64_t p;
            if (is_signed) {
                int64_t sp = sign_extend(a, size) * sign_extend(src, size);
                p = uint64_t(sp);
                overflow = sp != sign_extend(uint64_t(sp) & m, size);
            } else {
                p = a * src;
                overflow = (p >> bits) != 0;
            }
            lo = p & m;
            hi = (p >> bits) & m;
        }
        if (size == 1) {
            cpu.set_reg(k_rax, 2, lo | (hi << 8));
        } else {
            cpu.set_reg(k_rax, size, lo);
            cpu.set_reg(k_rdx, size, hi);
        }
        uint64_t f = overflow ? (k_flag_cf | k_flag_of) : 0;
        // SF/ZF/PF/AF are undefined; report them from the low half as
        // recent Intel cores do.
        if ((lo >> (size * 8 - 1)) & 1)
            f |= k_flag_sf;
        if ((lo & m) == 0)
            f |= k_flag_zf;
        if (parity_even(lo))
            f |= k_flag_pf;
        cpu.set_arith_flags(f);
        return;
    }
    case 6: // DIV
    case 7: { // IDIV
        bool is_signed = (d.reg & 7) == 7;
        uint64_t divisor = cpu.read_rm(d, size);
        if ((divisor & m) == 0)
            cpu.raise(k_de);
        uint64_t q, r;
        if (size == 8) {
            unsigned __int128 dividend = ((unsigned __int128)s.gpr[k_rdx] << 64) | s.gpr[k_rax];
            if (is_signed) {
                const __int128 int128_min = __int128((unsigned __int128)1 << 127);
                __int128 sd = __int128(dividend);
                int64_t sv = int64_t(divisor);
                if (sv == -1 && sd == int128_min)
                    cpu.raise(k_de);
                __int128 qq = sv == -1 ? -sd : sd / sv;
                if (qq > INT64_MAX || qq < INT64_MIN)
                    cpu.raise(k_de);
                q = uint64_t(int64_t(qq));
                r = sv == -1 ? 0 : uint64_t(int64_t(sd % sv));
            } else {
                unsigned __int128 qq = dividend / divisor;
                if (qq >> 64)
                    cpu.raise(k_de);
                q = uint64_t(qq);
                r = uint64_t(dividend % divisor);
            }
        } else {
            unsigned bits = size * 8;
            uint64_t dividend = size == 1 ? cpu.reg(k_rax, 2) : (cpu.reg(k_rdx, size) << bits) | cpu.reg(k_rax, size);
            if (is_signed) {
                int64_t sd = sign_extend(dividend, size * 2);
                int64_t sv = sign_extend(divisor, size);
                __int128 qq = sv == -1 ? -__int128(sd) : __int128(sd / sv);
                __int128 lim = __int128(1) << (bits - 1);
                if (qq >= lim || qq < -lim)
                    cpu.raise(k_de);
                q = uint64_t(qq) & m;
                r = sv == -1 ? 0 : uint64_t(sd % sv) & m;
            } else {
                uint64_t qq = dividend / divisor;
                if (qq >> bits)
                    cpu.raise(k_de);
                q = qq;
                r = dividend % divisor;
            }
        }
        if (size == 1) {
            cpu.set_reg(k_rax, 2, (q & 0xff) | ((r & 0xff) << 8));
        } else {
            cpu.set_reg(k_rax, size, q);
            cpu.set_reg(k_rdx, size, r);
        }
        return;
    }
    }
}

static void exec_incdec(InterpreterImpl& cpu, const DecodedInsn& d, unsigned size, bool dec, bool reg_form, unsigned r)
{
    uint64_t v = reg_form ? cpu.reg(r, size) : cpu.read_rm(d, size);
    bool cf = cpu.lazy().cf(cpu.state().rflags);
    uint64_t res = (dec ? v - 1 : v + 1) & size_mask(size);
    if (reg_form)
        cpu.set_reg(r, size, res);
    else
        cpu.write_rm(d, size, res);
    cpu.lazy().set(dec ? FlagOp::Dec : FlagOp::Inc, size, res, v, 1, cf);
}

static void exec_bcd(InterpreterImpl& cpu, uint8_t op, uint8_t imm)
{
    CpuState& s = cpu.state();
    uint64_t f = cpu.flags();
    uint8_t al = uint8_t(s.gpr[k_rax]);
    bool cf = f & k_flag_cf, af = f & k_flag_af;
    uint64_t nf = 0;
    auto szp = [&](uint8_t v) {
        uint64_t r = 0;
        if (v == 0)
            r |= k_flag_zf;
        if (v & 0x80)
            r |= k_flag_sf;
        if (parity_even(v))
            r |= k_flag_pf;
        return r;
    };
    switch (op) {
    case 0x27: { // DAA
        uint8_t old_al = al;
        bool new_cf = false;
        if ((al & 0xf) > 9 || af) {
            al = uint8_t(al + 6);
            new_cf = cf || old_al > 0xf9;
            af = true;
        } else {
            af = false;
        }
        if (old_al > 0x99 || cf) {
            al = uint8_t(al + 0x60);
            new_cf = true;
        }
        cpu.set_reg(k_rax, 1, al);
        nf = szp(al) | (new_cf ? k_flag_cf : 0) | (af ? k_flag_af : 0);
        break;
    }
    case 0x2f: { // DAS
        uint8_t old_al = al;
        bool new_cf = false;
        if ((al & 0xf) > 9 || af) {
            al = uint8_t(al - 6);
            new_cf = cf || old_al < 6;
            af = true;
        } else {
            af = false;
        }
        if (old_al > 0x99 || cf) {
            al = uint8_t(al - 0x60);
            new_cf = true;
        }
        cpu.set_reg(k_rax, 1, al);
        nf = szp(al) | (new_cf ? k_flag_cf : 0) | (af ? k_flag_af : 0);
        break;
    }
    case 0x37: // AAA
    case 0x3f: { // AAS
        uint16_t ax = uint16_t(s.gpr[k_rax]);
        if ((al & 0xf) > 9 || af) {
            if (op == 0x37) {
                ax = uint16_t(ax + 0x106);
            } else { // AX -= 6 (borrowing into AH), then AH -= 1
                ax = uint16_t(ax - 6);
                ax = uint16_t((ax & 0xff) | ((((ax >> 8) - 1) & 0xff) << 8));
            }
            nf = k_flag_af | k_flag_cf;
        }
        ax &= 0xff0f;
        cpu.set_reg(k_rax, 2, ax);
        nf |= szp(uint8_t(ax));
        break;
    }
    case 0xd4: { // AAM
        if (imm == 0)
            cpu.raise(k_de);
        uint8_t ah = al / imm;
        al = al % imm;
        cpu.set_reg(k_rax, 2, al | (ah << 8));
        nf = szp(al);
        break;
    }
    default: { // D5: AAD
        uint8_t ah = uint8_t(s.gpr[k_rax] >> 8);
        al = uint8_t(al + ah * imm);
        cpu.set_reg(k_rax, 2, al);
        nf = szp(al);
        break;
    }
    }
    cpu.set_arith_flags(nf);
}

bool InterpreterImpl::exec_alu(const DecodedInsn& d)
{
    const unsigned op = d.op;
    const unsigned size = d.opsize;
    CpuState& s = m_s;
    if (op < 0x40 && (op & 7) < 6) {
        unsigned alu = (op >> 3) & 7;
        switch (op & 7) {
        case 0:
        case 1: { // r/m, r
            unsigned sz = (op & 1) ? size : 1;
            uint64_t a = read_rm(d, sz);
            uint64_t r = alu_op(*this, alu, sz, a, reg(d.reg, sz));
            if (alu != 7)
                write_rm(d, sz, r);
            return true;
        }
        case 2:
        case 3: { // r, r/m
            unsigned sz = (op & 1) ? size : 1;
            uint64_t b = read_rm(d, sz);
            uint64_t r = alu_op(*this, alu, sz, reg(d.reg, sz), b);
            if (alu != 7)
                set_reg(d.reg, sz, r);
            return true;
        }
        case 4: { // AL, imm8
            uint64_t r = alu_op(*this, alu, 1, reg(k_rax, 1), d.imm);
            if (alu != 7)
                set_reg(k_rax, 1, r);
            return true;
        }
        case 5: { // rAX, immz
            uint64_t imm = uint64_t(sign_extend(d.imm, d.imm_size)) & size_mask(size);
            uint64_t r = alu_op(*this, alu, size, reg(k_rax, size), imm);
            if (alu != 7)
                set_reg(k_rax, size, r);
            return true;
        }
        }
    }
    switch (op) {
    case 0x27:
    case 0x2f:
    case 0x37:
    case 0x3f:
        exec_bcd(*this, uint8_t(op), 0);
        return true;
    case 0xd4:
    case 0xd5:
        exec_bcd(*this, uint8_t(op), uint8_t(d.imm));
        return true;
    case 0x40:
    case 0x41:
    case 0x42:
    case 0x43:
    case 0x44:
    case 0x45:
    case 0x46:
    case 0x47:
    case 0x48:
    case 0x49:
    case 0x4a:
    case 0x4b:
    case 0x4c:
    case 0x4d:
    case 0x4e:
    case 0x4f:
        exec_incdec(*this, d, size, op & 8, true, op & 7);
        return true;
    case 0x63:
        if (m_mode64) { // MOVSXD
            uint64_t v = read_rm(d, 4);
            set_reg(d.reg, size, size == 8 ? uint64_t(int64_t(int32_t(v))) : v);
            return true;
        }
        return false; // ARPL: system
    case 0x69:
    case 0x6b: // IMUL r, r/m, imm
        set_reg(d.reg, size, imul_truncated(*this, read_rm(d, size), uint64_t(sign_extend(d.imm, d.imm_size)), size));
        return true;
    case 0x1af: // IMUL r, r/m
        set_reg(d.reg, size, imul_truncated(*this, read_rm(d, size), reg(d.reg, size), size));
        return true;
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83: {
        unsigned sz = (op == 0x80 || op == 0x82) ? 1 : size;
        uint64_t imm = uint64_t(sign_extend(d.imm, d.imm_size)) & size_mask(sz);
        unsigned alu = d.reg & 7;
        uint64_t r = alu_op(*this, alu, sz, read_rm(d, sz), imm);
        if (alu != 7)
            write_rm(d, sz, r);
        return true;
    }
    case 0x84:
    case 0x85: {
        unsigned sz = op == 0x84 ? 1 : size;
        alu_op(*this, 4, sz, read_rm(d, sz), reg(d.reg, sz));
        return true;
    }
    case 0xa8:
        alu_op(*this, 4, 1, reg(k_rax, 1), d.imm);
        return true;
    case 0xa9:
        alu_op(*this, 4, size, reg(k_rax, size), uint64_t(sign_extend(d.imm, d.imm_size)) & size_mask(size));
        return true;
    case 0x86:
    case 0x87: { // XCHG r/m, r (always locked on memory)
        unsigned sz = op == 0x86 ? 1 : size;
        uint64_t a = read_rm(d, sz);
        uint64_t b = reg(d.reg, sz);
        write_rm(d, sz, b);
        set_reg(d.reg, sz, a);
        return true;
    }
    case 0x88:
        write_rm(d, 1, reg(d.reg, 1));
        return true;
    case 0x89:
        write_rm(d, size, reg(d.reg, size));
        return true;
    case 0x8a:
        set_reg(d.reg, 1, read_rm(d, 1));
        return true;
    case 0x8b:
        set_reg(d.reg, size, read_rm(d, size));
        return true;
    case 0x8d: // LEA
        if (d.mod == 3)
            raise_ud();
        set_reg(d.reg, size, effective_address(d));
        return true;
    case 0x90:
        if (d.rex & 1) { // XCHG r8, rAX
            uint64_t a = reg(8, size);
            set_reg(8, size, reg(k_rax, size));
            set_reg(k_rax, size, a);
        }
        return true; // NOP / PAUSE
    case 0x91:
    case 0x92:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97: {
        unsigned r = (op & 7) | ((d.rex & 1) << 3);
        uint64_t a = reg(r, size);
        set_reg(r, size, reg(k_rax, size));
        set_reg(k_rax, size, a);
        return true;
    }
    case 0x98: // CBW / CWDE / CDQE
        set_reg(k_rax, size, uint64_t(sign_extend(reg(k_rax, size / 2), size / 2)));
        return true;
    case 0x99: // CWD / CDQ / CQO
        set_reg(k_rdx, size, (reg(k_rax, size) >> (size * 8 - 1)) & 1 ? ~0ull : 0);
        return true;
    case 0x9e: { // SAHF
        uint64_t ah = (s.gpr[k_rax] >> 8) & 0xff;
        uint64_t mask = k_flag_cf | k_flag_pf | k_flag_af | k_flag_zf | k_flag_sf;
        m_flags.set_eager(s.rflags, ah, mask);
        return true;
    }
    case 0x9f: { // LAHF
        uint64_t f = flags() & 0xff;
        s.gpr[k_rax] = (s.gpr[k_rax] & ~0xff00ull) | ((f | 2) << 8);
        return true;
    }
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3: { // MOV moffs
        unsigned sz = (op & 1) ? size : 1;
        Seg seg = d.seg != k_no_seg ? Seg(d.seg) : Seg::DS;
        uint64_t off = d.imm;
        if (op < 0xa2)
            set_reg(k_rax, sz, read_mem(seg, off, sz));
        else
            write_mem(seg, off, sz, reg(k_rax, sz));
        return true;
    }
    case 0xb0:
    case 0xb1:
    case 0xb2:
    case 0xb3:
    case 0xb4:
    case 0xb5:
    case 0xb6:
    case 0xb7:
        set_reg((op & 7) | ((d.rex & 1) << 3), 1, d.imm);
        return true;
    case 0xb8:
    case 0xb9:
    case 0xba:
    case 0xbb:
    case 0xbc:
    case 0xbd:
    case 0xbe:
    case 0xbf:
        set_reg((op & 7) | ((d.rex & 1) << 3), size, d.imm);
        return true;
    case 0xc6:
        if ((d.reg & 7) != 0)
            raise_ud();
        write_rm(d, 1, d.imm);
        return true;
    case 0xc7:
        if ((d.reg & 7) != 0)
            raise_ud();
        write_rm(d, size, uint64_t(sign_extend(d.imm, d.imm_size)));
        return true;
    case 0xd7: { // XLAT
        Seg seg = d.seg != k_no_seg ? Seg(d.seg) : Seg::DS;
        uint64_t off = s.gpr[k_rbx] + (s.gpr[k_rax] & 0xff);
        off &= d.addrsize == 2 ? 0xffff : d.addrsize == 4 ? 0xffffffff : ~0ull;
        set_reg(k_rax, 1, read_mem(seg, off, 1));
        return true;
    }
    case 0xf5: // CMC
        m_flags.materialize(s.rflags);
        s.rflags ^= k_flag_cf;
        return true;
    case 0xf8: // CLC
        m_flags.materialize(s.rflags);
        s.rflags &= ~k_flag_cf;
        return true;
    case 0xf9: // STC
        m_flags.materialize(s.rflags);
        s.rflags |= k_flag_cf;
        return true;
    case 0xfc:
        s.rflags &= ~k_flag_df;
        return true;
    case 0xfd:
        s.rflags |= k_flag_df;
        return true;
    case 0xf6:
        exec_group3(*this, d, 1);
        return true;
    case 0xf7:
        exec_group3(*this, d, size);
        return true;
    case 0xfe:
        if ((d.reg & 7) > 1)
            raise_ud();
        exec_incdec(*this, d, 1, d.reg & 1, false, 0);
        return true;
    case 0xff:
        if ((d.reg & 7) > 1)
            return false; // CALL/JMP/PUSH: control
        exec_incdec(*this, d, size, d.reg & 1, false, 0);
        return true;
    case 0x1b6: // MOVZX r, r/m8
        set_reg(d.reg, size, read_rm(d, 1));
        return true;
    case 0x1b7:
        set_reg(d.reg, size, read_rm(d, 2));
        return true;
    case 0x1be: // MOVSX
        set_reg(d.reg, size, uint64_t(int64_t(int8_t(read_rm(d, 1)))));
        return true;
    case 0x1bf:
        set_reg(d.reg, size, uint64_t(int64_t(int16_t(read_rm(d, 2)))));
        return true;
    case 0x1c0:
    case 0x1c1: { // XADD
        unsigned sz = op == 0x1c0 ? 1 : size;
        uint64_t a = read_rm(d, sz);
        uint64_t b = reg(d.reg, sz);
        uint64_t r = (a + b) & size_mask(sz);
        if (d.mod == 3) { // the sum wins when both operands are one register
            set_reg(d.reg, sz, a);
            write_rm(d, sz, r);
        } else {
            write_rm(d, sz, r);
            set_reg(d.reg, sz, a);
        }
        m_flags.set(FlagOp::Add, sz, r, a, b);
        return true;
    }
    case 0x1b0:
    case 0x1b1: { // CMPXCHG
        unsigned sz = op == 0x1b0 ? 1 : size;
        uint64_t dest = read_rm(d, sz);
        uint64_t acc = reg(k_rax, sz);
        uint64_t r = (acc - dest) & size_mask(sz);
        if (acc == dest) {
            write_rm(d, sz, reg(d.reg, sz));
        } else {
            if (d.mod != 3)
                write_rm(d, sz, dest); // the processor always writes the destination
            set_reg(k_rax, sz, dest);
        }
        m_flags.set(FlagOp::Sub, sz, r, acc, dest);
        return true;
    }
    case 0x1c8:
    case 0x1c9:
    case 0x1ca:
    case 0x1cb:
    case 0x1cc:
    case 0x1cd:
    case 0x1ce:
    case 0x1cf: {
        unsigned r = (op & 7) | ((d.rex & 1) << 3);
        if (size == 8)
            s.gpr[r] = __builtin_bswap64(s.gpr[r]);
        else if (size == 4)
            set_reg(r, 4, __builtin_bswap32(uint32_t(s.gpr[r])));
        else
            set_reg(r, 2, 0); // BSWAP of a 16-bit register is undefined; zero as Intel cores do
        return true;
    }
    default:
        break;
    }
    if (op >= 0x140 && op <= 0x14f) { // CMOVcc: the destination is written even if false (zero-extension)
        uint64_t v = read_rm(d, size);
        set_reg(d.reg, size, cond(op & 0xf) ? v : reg(d.reg, size));
        return true;
    }
    if (op >= 0x190 && op <= 0x19f) {
        write_rm(d, 1, cond(op & 0xf) ? 1 : 0);
        return true;
    }
    return false;
}

} // namespace kiln::accel::interp
