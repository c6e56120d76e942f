// Handler selection for decoded blocks, and specialised handlers for the
// instruction forms that dominate real workloads (64-bit MOV/LEA/ALU/TEST/
// INC/DEC/MOVZX/MOVSX/CMOVcc/SETcc/Jcc/JMP/CALL/RET/PUSH/POP). Each one is
// instantiated per operand size and register/memory form, so it runs
// without the group dispatch and its switches. A fast handler must have
// exactly the semantics of the generic path for the forms it accepts: the
// oracle suite runs every 64-bit form through it.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/fast_operands.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

using namespace fast;

namespace {

// ALU operation Op (0 ADD, 1 OR, 2 ADC, 3 SBB, 4 AND, 5 SUB, 6 XOR, 7 CMP) on S-byte
// operands (already masked): the result, with the flags recorded lazily.
// F: record the flags. Blocks use F = false for register forms whose
// flags are overwritten before anything reads them (flag_use() and the
// liveness pass in build_block()).
template <unsigned Op, unsigned S, bool F = true>
[[gnu::always_inline]] inline uint64_t alu(InterpreterImpl& cpu, uint64_t a, uint64_t b)
{
    constexpr uint64_t m = mask_of<S>();
    LazyFlags& f = cpu.lazy();
    uint64_t r;
    if constexpr (Op == 0) {
        r = (a + b) & m;
        if constexpr (F)
            f.set(FlagOp::Add, S, r, a, b);
    } else if constexpr (Op == 2 || Op == 3) {
        const bool c = f.cf(cpu.state().rflags);
        if constexpr (Op == 2) {
            r = (a + b + c) & m;
            if constexpr (F)
                f.set(FlagOp::Adc, S, r, a, b, c);
        } else {
            r = (a - b - c) & m;
            if constexpr (F)
                f.set(FlagOp::Sbb, S, r, a, b, c);
        }
    } else if constexpr (Op == 5 || Op == 7) {
        r = (a - b) & m;
        if constexpr (F)
            f.set(FlagOp::Sub, S, r, a, b);
    } else {
        if constexpr (Op == 1)
            r = a | b;
        else if constexpr (Op == 4)
            r = a & b;
        else
            r = a ^ b;
        if constexpr (F)
            f.set(FlagOp::Logic, S, r, 0, 0);
    }
    return r;
}

// op r/m, r (00/01 family) and op r/m, imm (80/81/83): a read-modify-write
// of memory translates once when the TLB maps the page for writing.
template <unsigned Op, unsigned S, bool Mem, bool F>
void alu_rm(InterpreterImpl& cpu, const DecodedInsn& d, uint64_t b)
{
    if constexpr (!Mem) {
        uint64_t r = alu<Op, S, F>(cpu, get_r<S>(cpu, d.rm), b);
        if constexpr (Op != 7)
            set_r<S>(cpu, d.rm, r);
    } else {
        Seg seg = cpu.operand_seg(d);
        uint64_t ea = cpu.effective_address(d);
        if constexpr (Op == 7) {
            alu<Op, S>(cpu, cpu.read_mem(seg, ea, S), b);
        } else if (uint8_t* p = cpu.direct_ptr(seg, ea, S, Access::Write)) {
            InterpreterImpl::store_le(p, S, alu<Op, S>(cpu, InterpreterImpl::load_le(p, S), b));
        } else {
            uint64_t r = alu<Op, S>(cpu, cpu.read_mem(seg, ea, S), b);
            cpu.write_mem(seg, ea, S, r);
        }
    }
}

template <unsigned Op, unsigned S, bool Mem, bool F = true>
void alu_rm_r(InterpreterImpl& cpu, const DecodedInsn& d)
{
    alu_rm<Op, S, Mem, F>(cpu, d, get_r<S>(cpu, d.reg));
}

template <unsigned Op, unsigned S, bool Mem, bool F = true>
void alu_rm_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    alu_rm<Op, S, Mem, F>(cpu, d, uint64_t(sign_extend(d.imm, d.imm_size)) & mask_of<S>());
}

template <unsigned Op, unsigned S, bool Mem, bool F = true>
void alu_r_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t r = alu<Op, S, F>(cpu, get_r<S>(cpu, d.reg), get_rm<S, Mem>(cpu, d));
    if constexpr (Op != 7)
        set_r<S>(cpu, d.reg, r);
}

template <unsigned Op, unsigned S, bool F = true>
void alu_acc_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t r = alu<Op, S, F>(cpu, get_r<S>(cpu, k_rax), uint64_t(sign_extend(d.imm, d.imm_size)) & mask_of<S>());
    if constexpr (Op != 7)
        set_r<S>(cpu, k_rax, r);
}

template <unsigned S, bool Mem>
void test_rm_r(InterpreterImpl& cpu, const DecodedInsn& d)
{
    alu<4, S>(cpu, get_rm<S, Mem>(cpu, d), get_r<S>(cpu, d.reg));
}

template <unsigned S, bool Mem>
void mov_rm_r(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_rm<S, Mem>(cpu, d, get_r<S>(cpu, d.reg));
}

template <unsigned S, bool Mem>
void mov_r_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_r<S>(cpu, d.reg, get_rm<S, Mem>(cpu, d));
}

template <unsigned S, bool Mem>
void mov_rm_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_rm<S, Mem>(cpu, d, uint64_t(sign_extend(d.imm, d.imm_size)));
}

template <unsigned S>
void mov_r_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_r<S>(cpu, (d.op & 7) | ((d.rex & 1) << 3), d.imm);
}

template <unsigned S>
void lea(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_r<S>(cpu, d.reg, cpu.effective_address(d));
}

// MOVZX/MOVSX r, r/m8 or r/m16 (Src bytes), MOVSXD r64, r/m32.
template <unsigned S, unsigned Src, bool Signed, bool Mem>
void movx(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t v = get_rm<Src, Mem>(cpu, d);
    if constexpr (Signed)
        v = uint64_t(sign_extend(v, Src));
    set_r<S>(cpu, d.reg, v & mask_of<S>());
}

template <unsigned S, bool Mem, bool Dec, bool F = true>
void incdec(InterpreterImpl& cpu, const DecodedInsn& d)
{
    if constexpr (!F) {
        static_assert(!Mem);
        set_r<S>(cpu, d.rm, (Dec ? get_r<S>(cpu, d.rm) - 1 : get_r<S>(cpu, d.rm) + 1) & mask_of<S>());
        return;
    }
    bool cf = cpu.lazy().cf(cpu.state().rflags);
    uint64_t v, res;
    if constexpr (Mem) {
        Seg seg = cpu.operand_seg(d);
        uint64_t ea = cpu.effective_address(d);
        if (uint8_t* p = cpu.direct_ptr(seg, ea, S, Access::Write)) {
            v = InterpreterImpl::load_le(p, S);
            res = (Dec ? v - 1 : v + 1) & mask_of<S>();
            InterpreterImpl::store_le(p, S, res);
        } else {
            v = cpu.read_mem(seg, ea, S);
            res = (Dec ? v - 1 : v + 1) & mask_of<S>();
            cpu.write_mem(seg, ea, S, res);
        }
    } else {
        v = get_r<S>(cpu, d.rm);
        res = (Dec ? v - 1 : v + 1) & mask_of<S>();
        set_r<S>(cpu, d.rm, res);
    }
    cpu.lazy().set(Dec ? FlagOp::Dec : FlagOp::Inc, S, res, v, 1, cf);
}

// The condition is a template argument: each of the 16 gets its own
// handler, so evaluating it is a few inline compares instead of a switch
// on the condition code (an indirect branch the host mispredicts).
template <unsigned CC, unsigned S, bool Mem>
void cmovcc(InterpreterImpl& cpu, const DecodedInsn& d)
{
    // The source is read (and may fault) whether or not the move happens;
    // a 32-bit destination is zero-extended either way.
    uint64_t v = get_rm<S, Mem>(cpu, d);
    if (cpu.cond(CC))
        set_r<S>(cpu, d.reg, v);
    else if constexpr (S == 4)
        set_r<S>(cpu, d.reg, get_r<S>(cpu, d.reg));
}

template <unsigned CC, bool Mem>
void setcc(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_rm<1, Mem>(cpu, d, cpu.cond(CC) ? 1 : 0);
}

template <unsigned CC>
void jcc(InterpreterImpl& cpu, const DecodedInsn& d)
{
    if (cpu.cond(CC))
        cpu.jump_near(cpu.next_rip() + uint64_t(sign_extend(d.imm, d.imm_size)));
}

void jmp_rel(InterpreterImpl& cpu, const DecodedInsn& d)
{
    cpu.jump_near(cpu.next_rip() + uint64_t(sign_extend(d.imm, d.imm_size)));
}

// 64-bit stack forms with the default 8-byte operand size.
void push64(InterpreterImpl& cpu, uint64_t v)
{
    uint64_t sp = cpu.state().gpr[k_rsp] - 8;
    cpu.write_mem(Seg::SS, sp, 8, v);
    cpu.state().gpr[k_rsp] = sp;
}

void push_r64(InterpreterImpl& cpu, const DecodedInsn& d)
{
    push64(cpu, cpu.state().gpr[(d.op & 7) | ((d.rex & 1) << 3)]);
}

void pop_r64(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t& rsp = cpu.state().gpr[k_rsp];
    uint64_t v = cpu.read_mem(Seg::SS, rsp, 8);
    rsp += 8;
    cpu.state().gpr[(d.op & 7) | ((d.rex & 1) << 3)] = v;
}

void call_rel64(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t ret = cpu.next_rip();
    push64(cpu, ret);
    cpu.jump_near(ret + uint64_t(sign_extend(d.imm, d.imm_size)));
}

// A direct JMP/CALL the block continues after (build_block() decoded its
// target next): no block end.
void jmp_followed(InterpreterImpl& cpu, const DecodedInsn& d)
{
    cpu.set_next_rip(cpu.next_rip() + uint64_t(sign_extend(d.imm, d.imm_size)));
}

void call_followed(InterpreterImpl& cpu, const DecodedInsn& d)
{
    const uint64_t ret = cpu.next_rip();
    push64(cpu, ret);
    cpu.set_next_rip(ret + uint64_t(sign_extend(d.imm, d.imm_size)));
}

void ret64(InterpreterImpl& cpu, const DecodedInsn&)
{
    uint64_t& rsp = cpu.state().gpr[k_rsp];
    uint64_t target = cpu.read_mem(Seg::SS, rsp, 8);
    cpu.jump_near(target);
    rsp += 8;
}

[[gnu::always_inline]] inline uint64_t szp(uint64_t r, unsigned size)
{
    uint64_t f = parity_even(r) ? k_flag_pf : 0;
    if (r == 0)
        f |= k_flag_zf;
    if ((r >> (size * 8 - 1)) & 1)
        f |= k_flag_sf;
    return f;
}

// C0/C1 (count imm8), D0/D1 (count 1), D2/D3 (count CL): ROL, ROR, SHL/SAL,
// SHR, SAR with the flags exec_bits gives them. The destination is written
// back even for a zero count (a 32-bit register is zero-extended).
template <unsigned Kind, unsigned S, bool Mem, unsigned CountFrom, bool F = true>
void shift(InterpreterImpl& cpu, const DecodedInsn& d)
{
    constexpr unsigned bits = S * 8;
    constexpr uint64_t m = mask_of<S>();
    unsigned count = CountFrom == 0 ? unsigned(d.imm) : CountFrom == 1 ? 1u : unsigned(cpu.state().gpr[k_rcx] & 0xff);
    count &= S == 8 ? 0x3f : 0x1f;
    Seg seg = Seg::DS;
    uint64_t ea = 0;
    uint8_t* p = nullptr;
    uint64_t v;
    if constexpr (Mem) {
        seg = cpu.operand_seg(d);
        ea = cpu.effective_address(d);
        p = cpu.direct_ptr(seg, ea, S, Access::Write);
        v = p ? InterpreterImpl::load_le(p, S) : cpu.read_mem(seg, ea, S);
    } else {
        v = get_r<S>(cpu, d.rm);
    }
    uint64_t r = v;
    if (count && !F) {
        // Flags dead: the result only.
        if constexpr (Kind == 0 || Kind == 1) {
            unsigned c = count % bits;
            if (c)
                r = Kind == 0 ? ((v << c) | (v >> (bits - c))) & m : ((v >> c) | (v << (bits - c))) & m;
        } else if constexpr (Kind == 4) {
            r = count < bits ? (v << count) & m : 0;
        } else if constexpr (Kind == 5) {
            r = count < bits ? v >> count : 0;
        } else {
            int64_t sv = int64_t(v << (64 - bits)) >> (64 - bits);
            r = uint64_t(sv >> (count < bits ? count : bits - 1)) & m;
        }
    } else if (count) {
        auto msb = [](uint64_t x) -> uint64_t { return (x >> (bits - 1)) & 1; };
        if constexpr (Kind == 0 || Kind == 1) {
            unsigned c = count % bits;
            uint64_t f = cpu.lazy().get(cpu.state().rflags) & k_flags_arith & ~(k_flag_cf | k_flag_of);
            uint64_t cf, of;
            if constexpr (Kind == 0) {
                r = c ? ((v << c) | (v >> (bits - c))) & m : v;
                cf = r & 1;
                of = msb(r) ^ cf;
            } else {
                r = c ? ((v >> c) | (v << (bits - c))) & m : v;
                cf = msb(r);
                of = cf ^ ((r >> (bits - 2)) & 1);
            }
            cpu.set_arith_flags(f | (cf ? k_flag_cf : 0) | (of ? k_flag_of : 0));
        } else if constexpr (Kind == 4) {
            r = count < bits ? (v << count) & m : 0;
            uint64_t c = count <= bits ? (v >> (bits - count)) & 1 : 0;
            cpu.set_arith_flags(szp(r, S) | (c ? k_flag_cf : 0) | ((msb(r) ^ c) ? k_flag_of : 0));
        } else if constexpr (Kind == 5) {
            r = count < bits ? v >> count : 0;
            uint64_t c = count <= bits ? (v >> (count - 1)) & 1 : 0;
            cpu.set_arith_flags(szp(r, S) | (c ? k_flag_cf : 0) | (msb(v) ? k_flag_of : 0));
        } else {
            int64_t sv = int64_t(v << (64 - bits)) >> (64 - bits);
            unsigned c = count < bits ? count : bits - 1;
            r = uint64_t(sv >> c) & m;
            bool out = count < bits ? (sv >> (count - 1)) & 1 : sv < 0;
            cpu.set_arith_flags(szp(r, S) | (out ? k_flag_cf : 0));
        }
    }
    if constexpr (Mem) {
        if (p)
            InterpreterImpl::store_le(p, S, r);
        else
            cpu.write_mem(seg, ea, S, r);
    } else {
        set_r<S>(cpu, d.rm, r);
    }
}

// IMUL r, r/m (0F AF) and IMUL r, r/m, imm (69, 6B): the truncated
// product; CF=OF when it did not fit, SF/ZF/PF from the result, AF clear
// (as exec_alu and Intel cores give them).
template <unsigned S, bool Mem, bool Imm, bool F = true>
void imul2(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t a = get_rm<S, Mem>(cpu, d);
    uint64_t b = Imm ? uint64_t(sign_extend(d.imm, d.imm_size)) : get_r<S>(cpu, d.reg);
    uint64_t lo;
    bool overflow;
    if constexpr (S == 8) {
        __int128 p = __int128(int64_t(a)) * int64_t(b);
        lo = uint64_t(p);
        overflow = p != __int128(int64_t(lo));
    } else {
        int64_t p = sign_extend(a, S) * sign_extend(b, S);
        lo = uint64_t(p) & mask_of<S>();
        overflow = p != sign_extend(lo, S);
    }
    if constexpr (F)
        cpu.set_arith_flags(szp(lo, S) | (overflow ? (k_flag_cf | k_flag_of) : 0));
    set_r<S>(cpu, d.reg, lo);
}

template <unsigned S, bool Mem>
void imul_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    imul2<S, Mem, false>(cpu, d);
}

template <unsigned S, bool Mem>
void imul_rm_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    imul2<S, Mem, true>(cpu, d);
}

// The register forms without flags.
template <unsigned S, bool Mem>
void imul_rm_nf(InterpreterImpl& cpu, const DecodedInsn& d)
{
    imul2<S, false, false, false>(cpu, d);
}

template <unsigned S, bool Mem>
void imul_rm_imm_nf(InterpreterImpl& cpu, const DecodedInsn& d)
{
    imul2<S, false, true, false>(cpu, d);
}


// F6/F7 /0 (TEST r/m, imm), /2 (NOT), /3 (NEG).
template <unsigned S, bool Mem>
void test_rm_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    alu<4, S>(cpu, get_rm<S, Mem>(cpu, d), uint64_t(sign_extend(d.imm, d.imm_size)) & mask_of<S>());
}

template <unsigned S, bool Mem>
void not_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    set_rm<S, Mem>(cpu, d, ~get_rm<S, Mem>(cpu, d) & mask_of<S>());
}

template <unsigned S, bool Mem, bool F = true>
void neg_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t v = get_rm<S, Mem>(cpu, d);
    uint64_t r = (0 - v) & mask_of<S>();
    set_rm<S, Mem>(cpu, d, r);
    if constexpr (F)
        cpu.lazy().set(FlagOp::Neg, S, r, 0, v);
}

template <unsigned S, bool Mem>
void neg_nf(InterpreterImpl& cpu, const DecodedInsn& d)
{
    neg_rm<S, false, false>(cpu, d);
}

template <unsigned S>
void bswap(InterpreterImpl& cpu, const DecodedInsn& d)
{
    uint64_t& r = cpu.state().gpr[(d.op & 7) | ((d.rex & 1) << 3)];
    if constexpr (S == 8)
        r = __builtin_bswap64(r);
    else
        r = __builtin_bswap32(uint32_t(r));
}

template <unsigned S>
void test_acc_imm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    alu<4, S>(cpu, get_r<S>(cpu, k_rax), uint64_t(sign_extend(d.imm, d.imm_size)) & mask_of<S>());
}

// 90 without REX.B (NOP, PAUSE) and the 0F 1F hint NOPs: nothing to do.
void nop(InterpreterImpl&, const DecodedInsn&) { }

void sentinel(InterpreterImpl&, const DecodedInsn&) { }

void exec_generic(InterpreterImpl& cpu, const DecodedInsn& d)
{
    // Event delivery (INT n, far transfers) may move RIP before faulting;
    // the fault must be reported at this instruction.
    const uint64_t rip = cpu.state().rip;
    try {
        cpu.execute(d);
    } catch (const CpuException&) {
        cpu.state().rip = rip;
        throw;
    }
}

// Every handler runs through this wrapper: the instruction, then the jump
// to the next one of the block (direct threading: each handler has its own
// indirect branch, which the host predicts far better than one shared
// dispatch site).
template <ExecFn F>
void threaded(InterpreterImpl& cpu, const DecodedInsn& d)
{
    F(cpu, d);
    cpu.chain(d);
}

template <unsigned Kind, unsigned CountFrom>
ExecFn shift_by_size(unsigned sz, bool mem, bool nf)
{
    if (nf) {
        switch (sz) {
        case 1:
            return &threaded<&shift<Kind, 1, false, CountFrom, false>>;
        case 2:
            return &threaded<&shift<Kind, 2, false, CountFrom, false>>;
        case 4:
            return &threaded<&shift<Kind, 4, false, CountFrom, false>>;
        default:
            return &threaded<&shift<Kind, 8, false, CountFrom, false>>;
        }
    }
    switch (sz) {
    case 1:
        return mem ? &threaded<&shift<Kind, 1, true, CountFrom>> : &threaded<&shift<Kind, 1, false, CountFrom>>;
    case 2:
        return mem ? &threaded<&shift<Kind, 2, true, CountFrom>> : &threaded<&shift<Kind, 2, false, CountFrom>>;
    case 4:
        return mem ? &threaded<&shift<Kind, 4, true, CountFrom>> : &threaded<&shift<Kind, 4, false, CountFrom>>;
    default:
        return mem ? &threaded<&shift<Kind, 8, true, CountFrom>> : &threaded<&shift<Kind, 8, false, CountFrom>>;
    }
}

template <unsigned CountFrom>
ExecFn shift_handler(unsigned kind, unsigned sz, bool mem, bool nf)
{
    switch (kind) {
    case 0:
        return shift_by_size<0, CountFrom>(sz, mem, nf);
    case 1:
        return shift_by_size<1, CountFrom>(sz, mem, nf);
    case 4:
    case 6: // SAL is SHL
        return shift_by_size<4, CountFrom>(sz, mem, nf);
    case 5:
        return shift_by_size<5, CountFrom>(sz, mem, nf);
    case 7:
        return shift_by_size<7, CountFrom>(sz, mem, nf);
    default:
        return nullptr; // RCL/RCR: generic
    }
}


// Instantiates H<size, mem> for the instruction's operand size and form.
#define KILN_BY_SIZE_MEM(H, sz, mem)                                                                  \
    ((sz) == 1 ? ((mem) ? &threaded<&H<1, true>> : &threaded<&H<1, false>>)                                                 \
            : (sz) == 2 ? ((mem) ? &threaded<&H<2, true>> : &threaded<&H<2, false>>)                                        \
                        : (sz) == 4 ? ((mem) ? &threaded<&H<4, true>> : &threaded<&H<4, false>>) : ((mem) ? &threaded<&H<8, true>> : &threaded<&H<8, false>>))

// The same with the ALU operation as the first template argument.
#define KILN_BY_OP_SIZE_MEM(H, OP, sz, mem)                                                           \
    ((sz) == 1 ? ((mem) ? &threaded<&H<OP, 1, true>> : &threaded<&H<OP, 1, false>>)                                         \
            : (sz) == 2 ? ((mem) ? &threaded<&H<OP, 2, true>> : &threaded<&H<OP, 2, false>>)                                \
                        : (sz) == 4 ? ((mem) ? &threaded<&H<OP, 4, true>> : &threaded<&H<OP, 4, false>>)                    \
                                    : ((mem) ? &threaded<&H<OP, 8, true>> : &threaded<&H<OP, 8, false>>))

// Register forms without flags (nf). CMP has nothing else to do.
#define KILN_NF_BY_OP_SIZE(H, OP, sz)                                                                 \
    ((sz) == 1 ? &threaded<&H<OP, 1, false, false>> : (sz) == 2 ? &threaded<&H<OP, 2, false, false>>   \
            : (sz) == 4 ? &threaded<&H<OP, 4, false, false>> : &threaded<&H<OP, 8, false, false>>)

template <unsigned Op>
ExecFn pick_alu(unsigned form, unsigned sz, bool mem, bool nf)
{
    if (nf) {
        if constexpr (Op == 7)
            return &threaded<&nop>;
        switch (form) {
        case 0:
            return KILN_NF_BY_OP_SIZE(alu_rm_r, Op, sz);
        case 1:
            return KILN_NF_BY_OP_SIZE(alu_r_rm, Op, sz);
        default:
            return KILN_NF_BY_OP_SIZE(alu_rm_imm, Op, sz);
        }
    }
    switch (form) {
    case 0:
        return KILN_BY_OP_SIZE_MEM(alu_rm_r, Op, sz, mem);
    case 1:
        return KILN_BY_OP_SIZE_MEM(alu_r_rm, Op, sz, mem);
    default:
        return KILN_BY_OP_SIZE_MEM(alu_rm_imm, Op, sz, mem);
    }
}

ExecFn alu_handler(unsigned op, unsigned form, unsigned sz, bool mem, bool nf)
{
    switch (op) {
    case 0:
        return pick_alu<0>(form, sz, mem, nf);
    case 1:
        return pick_alu<1>(form, sz, mem, nf);
    case 4:
        return pick_alu<4>(form, sz, mem, nf);
    case 5:
        return pick_alu<5>(form, sz, mem, nf);
    case 6:
        return pick_alu<6>(form, sz, mem, nf);
    case 7:
        return pick_alu<7>(form, sz, mem, nf);
    case 2:
        return pick_alu<2>(form, sz, mem, nf);
    default:
        return pick_alu<3>(form, sz, mem, nf);
    }
}

ExecFn acc_imm_handler(unsigned op, unsigned sz, bool nf)
{
    if (nf && op == 7)
        return &threaded<&nop>;
#define KILN_ACC(OP) \
    (nf ? (sz == 1 ? &threaded<&alu_acc_imm<OP, 1, false>> : sz == 2 ? &threaded<&alu_acc_imm<OP, 2, false>> : sz == 4 ? &threaded<&alu_acc_imm<OP, 4, false>> : &threaded<&alu_acc_imm<OP, 8, false>>) \
        : (sz == 1 ? &threaded<&alu_acc_imm<OP, 1>> : sz == 2 ? &threaded<&alu_acc_imm<OP, 2>> : sz == 4 ? &threaded<&alu_acc_imm<OP, 4>> : &threaded<&alu_acc_imm<OP, 8>>))
    switch (op) {
    case 0:
        return KILN_ACC(0);
    case 1:
        return KILN_ACC(1);
    case 4:
        return KILN_ACC(4);
    case 5:
        return KILN_ACC(5);
    case 6:
        return KILN_ACC(6);
    case 7:
        return KILN_ACC(7);
    case 2:
        return KILN_ACC(2);
    default:
        return KILN_ACC(3);
    }
#undef KILN_ACC
}

template <unsigned S>
ExecFn movx_handler(unsigned op, bool mem)
{
    switch (op) {
    case 0x1b6:
        return mem ? &threaded<&movx<S, 1, false, true>> : &threaded<&movx<S, 1, false, false>>;
    case 0x1b7:
        return mem ? &threaded<&movx<S, 2, false, true>> : &threaded<&movx<S, 2, false, false>>;
    case 0x1be:
        return mem ? &threaded<&movx<S, 1, true, true>> : &threaded<&movx<S, 1, true, false>>;
    case 0x1bf:
        return mem ? &threaded<&movx<S, 2, true, true>> : &threaded<&movx<S, 2, true, false>>;
    default: // 63: MOVSXD
        return mem ? &threaded<&movx<S, 4, true, true>> : &threaded<&movx<S, 4, true, false>>;
    }
}

// Instantiates P::get<CC>(d) for the runtime condition code cc.
template <typename P>
ExecFn by_cc(unsigned cc, const DecodedInsn& d)
{
    switch (cc & 0xf) {
    case 0x0: return P::template get<0x0>(d);
    case 0x1: return P::template get<0x1>(d);
    case 0x2: return P::template get<0x2>(d);
    case 0x3: return P::template get<0x3>(d);
    case 0x4: return P::template get<0x4>(d);
    case 0x5: return P::template get<0x5>(d);
    case 0x6: return P::template get<0x6>(d);
    case 0x7: return P::template get<0x7>(d);
    case 0x8: return P::template get<0x8>(d);
    case 0x9: return P::template get<0x9>(d);
    case 0xa: return P::template get<0xa>(d);
    case 0xb: return P::template get<0xb>(d);
    case 0xc: return P::template get<0xc>(d);
    case 0xd: return P::template get<0xd>(d);
    case 0xe: return P::template get<0xe>(d);
    default: return P::template get<0xf>(d);
    }
}

struct JccPick {
    template <unsigned CC>
    static ExecFn get(const DecodedInsn&) { return &threaded<&jcc<CC>>; }
};

struct CmovPick {
    template <unsigned CC>
    static ExecFn get(const DecodedInsn& d)
    {
        const bool mem = d.is_mem();
        switch (d.opsize) {
        case 2:
            return mem ? &threaded<&cmovcc<CC, 2, true>> : &threaded<&cmovcc<CC, 2, false>>;
        case 4:
            return mem ? &threaded<&cmovcc<CC, 4, true>> : &threaded<&cmovcc<CC, 4, false>>;
        default:
            return mem ? &threaded<&cmovcc<CC, 8, true>> : &threaded<&cmovcc<CC, 8, false>>;
        }
    }
};

struct SetccPick {
    template <unsigned CC>
    static ExecFn get(const DecodedInsn& d)
    {
        return d.is_mem() ? &threaded<&setcc<CC, true>> : &threaded<&setcc<CC, false>>;
    }
};

// nf: the instruction is a register form whose flags are dead (the
// block's liveness pass decided); pick a variant that does not record them.
ExecFn select_fast(const DecodedInsn& d, bool nf)
{
    const unsigned op = d.op;
    const unsigned size = d.opsize;
    const bool mem = d.is_mem();
    if (op < 0x40 && (op & 7) < 6) {
        unsigned alu_op = (op >> 3) & 7;
        unsigned sz = (op & 1) ? size : 1;
        switch (op & 7) {
        case 0:
        case 1:
            return alu_handler(alu_op, 0, sz, mem, nf);
        case 2:
        case 3:
            return alu_handler(alu_op, 1, sz, mem, nf);
        default:
            return acc_imm_handler(alu_op, sz, nf);
        }
    }
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f))
        return by_cc<JccPick>(op & 0xf, d);
    if (op >= 0x140 && op <= 0x14f)
        return by_cc<CmovPick>(op & 0xf, d);
    if (op >= 0x190 && op <= 0x19f)
        return by_cc<SetccPick>(op & 0xf, d);
    if (op >= 0x50 && op <= 0x57)
        return size == 8 ? &threaded<&push_r64> : nullptr;
    if (op >= 0x58 && op <= 0x5f)
        return size == 8 ? &threaded<&pop_r64> : nullptr;
    if (op >= 0x1c8 && op <= 0x1cf) // BSWAP
        return size == 8 ? &threaded<&bswap<8>> : size == 4 ? &threaded<&bswap<4>> : nullptr;
    if (op >= 0xb0 && op <= 0xb7)
        return &threaded<&mov_r_imm<1>>;
    if (op >= 0xb8 && op <= 0xbf)
        return size == 2 ? &threaded<&mov_r_imm<2>> : size == 4 ? &threaded<&mov_r_imm<4>> : &threaded<&mov_r_imm<8>>;
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x83:
        return alu_handler(d.reg & 7, 2, op == 0x80 ? 1 : size, mem, nf);
    case 0xc0:
    case 0xc1:
        return shift_handler<0>(d.reg & 7, op == 0xc0 ? 1 : size, mem, nf);
    case 0xd0:
    case 0xd1:
        return shift_handler<1>(d.reg & 7, op == 0xd0 ? 1 : size, mem, nf);
    case 0xd2:
    case 0xd3:
        return shift_handler<2>(d.reg & 7, op == 0xd2 ? 1 : size, mem, nf);
    case 0x1af:
        if (nf)
            return KILN_BY_SIZE_MEM(imul_rm_nf, size, false);
        return KILN_BY_SIZE_MEM(imul_rm, size, mem);
    case 0x69:
    case 0x6b:
        if (nf)
            return KILN_BY_SIZE_MEM(imul_rm_imm_nf, size, false);
        return KILN_BY_SIZE_MEM(imul_rm_imm, size, mem);
    case 0xf6:
    case 0xf7: {
        unsigned sz = op == 0xf6 ? 1 : size;
        switch (d.reg & 7) {
        case 0:
        case 1:
            if (nf)
                return &threaded<&nop>;
            return KILN_BY_SIZE_MEM(test_rm_imm, sz, mem);
        case 2:
            return KILN_BY_SIZE_MEM(not_rm, sz, mem);
        case 3:
            if (nf)
                return KILN_BY_SIZE_MEM(neg_nf, sz, false);
            return KILN_BY_SIZE_MEM(neg_rm, sz, mem);
        default:
            return nullptr;
        }
    }
    case 0xa8:
        if (nf)
            return &threaded<&nop>;
        return &threaded<&test_acc_imm<1>>;
    case 0xa9:
        if (nf)
            return &threaded<&nop>;
        return size == 2 ? &threaded<&test_acc_imm<2>> : size == 4 ? &threaded<&test_acc_imm<4>> : &threaded<&test_acc_imm<8>>;
    case 0x90:
        return (d.rex & 1) ? nullptr : &threaded<&nop>;
    case 0x11f:
        return &threaded<&nop>;
    case 0x84:
    case 0x85:
        if (nf)
            return &threaded<&nop>;
        if (op == 0x84)
            return mem ? &threaded<&test_rm_r<1, true>> : &threaded<&test_rm_r<1, false>>;
        return KILN_BY_SIZE_MEM(test_rm_r, size, mem);
    case 0x88:
        return mem ? &threaded<&mov_rm_r<1, true>> : &threaded<&mov_rm_r<1, false>>;
    case 0x89:
        return KILN_BY_SIZE_MEM(mov_rm_r, size, mem);
    case 0x8a:
        return mem ? &threaded<&mov_r_rm<1, true>> : &threaded<&mov_r_rm<1, false>>;
    case 0x8b:
        return KILN_BY_SIZE_MEM(mov_r_rm, size, mem);
    case 0x8d:
        if (!mem)
            return nullptr; // #UD
        return size == 2 ? &threaded<&lea<2>> : size == 4 ? &threaded<&lea<4>> : &threaded<&lea<8>>;
    case 0xc6:
        return (d.reg & 7) ? nullptr : mem ? &threaded<&mov_rm_imm<1, true>> : &threaded<&mov_rm_imm<1, false>>;
    case 0xc7:
        return (d.reg & 7) ? nullptr : KILN_BY_SIZE_MEM(mov_rm_imm, size, mem);
    case 0xfe:
        if ((d.reg & 7) > 1)
            return nullptr;
        if (nf)
            return (d.reg & 1) ? &threaded<&incdec<1, false, true, false>> : &threaded<&incdec<1, false, false, false>>;
        if (d.reg & 1)
            return mem ? &threaded<&incdec<1, true, true>> : &threaded<&incdec<1, false, true>>;
        return mem ? &threaded<&incdec<1, true, false>> : &threaded<&incdec<1, false, false>>;
    case 0xff:
        if (nf && (d.reg & 7) < 2) {
            const bool dec = d.reg & 1;
            if (size == 2)
                return dec ? &threaded<&incdec<2, false, true, false>> : &threaded<&incdec<2, false, false, false>>;
            if (size == 4)
                return dec ? &threaded<&incdec<4, false, true, false>> : &threaded<&incdec<4, false, false, false>>;
            return dec ? &threaded<&incdec<8, false, true, false>> : &threaded<&incdec<8, false, false, false>>;
        }
        if ((d.reg & 7) == 0) {
            if (size == 2)
                return mem ? &threaded<&incdec<2, true, false>> : &threaded<&incdec<2, false, false>>;
            if (size == 4)
                return mem ? &threaded<&incdec<4, true, false>> : &threaded<&incdec<4, false, false>>;
            return mem ? &threaded<&incdec<8, true, false>> : &threaded<&incdec<8, false, false>>;
        }
        if ((d.reg & 7) == 1) {
            if (size == 2)
                return mem ? &threaded<&incdec<2, true, true>> : &threaded<&incdec<2, false, true>>;
            if (size == 4)
                return mem ? &threaded<&incdec<4, true, true>> : &threaded<&incdec<4, false, true>>;
            return mem ? &threaded<&incdec<8, true, true>> : &threaded<&incdec<8, false, true>>;
        }
        return nullptr;
    case 0xeb:
    case 0xe9:
        return &threaded<&jmp_rel>;
    case 0xe8:
        return size == 8 ? &threaded<&call_rel64> : nullptr;
    case 0xc3:
        return size == 8 ? &threaded<&ret64> : nullptr;
    case 0x1b6:
    case 0x1b7:
    case 0x1be:
    case 0x1bf:
        if (size == 2)
            return movx_handler<2>(op, mem);
        return size == 4 ? movx_handler<4>(op, mem) : movx_handler<8>(op, mem);
    case 0x63:
        if (size == 8)
            return movx_handler<8>(op, mem);
        return nullptr;
    default:
        return nullptr;
    }
}

} // namespace

ExecFn generic_handler() { return &threaded<&exec_generic>; }

ExecFn block_sentinel() { return &sentinel; }

ExecFn followed_transfer(const DecodedInsn& d) { return d.op == 0xe8 ? &threaded<&call_followed> : &threaded<&jmp_followed>; }

ExecFn select_handler(const DecodedInsn& d, CodeSize size, uint8_t live_after)
{
    // Only 64-bit code gets specialised handlers (the inline memory fast
    // path is 64-bit only); LOCK keeps the generic path and its checks.
    if (size == CodeSize::Bits64 && !d.lock()) {
        const FlagUse u = flag_use(d);
        // A register form whose flags nothing reads: no flags at all. Memory
        // forms always record theirs (they may end the block: MMIO).
        const bool nf = !u.barrier && !d.is_mem() && u.may_write && !(u.may_write & live_after);
        if (ExecFn fn = select_fast(d, nf))
            return fn;
    }
    return &threaded<&exec_generic>;
}

namespace {

uint8_t cond_reads(unsigned cc)
{
    switch ((cc >> 1) & 7) {
    case 0:
        return k_lf_of;
    case 1:
        return k_lf_cf;
    case 2:
        return k_lf_zf;
    case 3:
        return k_lf_cf | k_lf_zf;
    case 4:
        return k_lf_sf;
    case 5:
        return k_lf_pf;
    case 6:
        return k_lf_sf | k_lf_of;
    default:
        return k_lf_zf | k_lf_sf | k_lf_of;
    }
}

FlagUse writes_all() { return FlagUse { 0, k_lf_all, k_lf_all, false }; }

} // namespace

FlagUse flag_use(const DecodedInsn& d)
{
    constexpr FlagUse none { 0, 0, 0, false };
    constexpr FlagUse barrier { k_lf_all, 0, 0, true };
    const unsigned op = d.op;
    if (d.lock())
        return barrier;
    // LEA and the hint NOPs have a memory operand but no access.
    if (op == 0x8d || op == 0x11f)
        return none;
    // Anything touching memory may fault or reach MMIO (ending the block):
    // the flags must be exact before it.
    if (d.is_mem())
        return barrier;
    if (op < 0x40 && (op & 7) < 6) {
        FlagUse u = writes_all();
        if (((op >> 3) & 7) == 2 || ((op >> 3) & 7) == 3) // ADC, SBB
            u.reads = k_lf_cf;
        return u;
    }
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f))
        return FlagUse { uint8_t(cond_reads(op)), 0, 0, false };
    if ((op >= 0x140 && op <= 0x14f) || (op >= 0x190 && op <= 0x19f))
        return FlagUse { uint8_t(cond_reads(op)), 0, 0, false };
    if ((op >= 0xb0 && op <= 0xbf) || (op >= 0x1c8 && op <= 0x1cf))
        return none;
    const unsigned r = d.reg & 7;
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x83: {
        FlagUse u = writes_all();
        if (r == 2 || r == 3)
            u.reads = k_lf_cf;
        return u;
    }
    case 0x84:
    case 0x85:
    case 0xa8:
    case 0xa9:
    case 0x1af:
    case 0x69:
    case 0x6b:
        return writes_all();
    case 0xf6:
    case 0xf7:
        if (r == 0 || r == 1 || r == 3)
            return writes_all();
        if (r == 2)
            return none;
        return barrier; // MUL/IMUL/DIV/IDIV: generic (DIV faults)
    case 0xfe:
    case 0xff:
        if (r < 2) // INC/DEC keep CF
            return FlagUse { 0, uint8_t(k_lf_all & ~k_lf_cf), uint8_t(k_lf_all & ~k_lf_cf), false };
        return barrier;
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        if (r == 2 || r == 3) // RCL/RCR read CF
            return barrier;
        const uint8_t w = r < 2 ? uint8_t(k_lf_cf | k_lf_of) : k_lf_all;
        if (op >= 0xd2) // count in CL: zero leaves the flags alone
            return FlagUse { 0, 0, w, false };
        const unsigned size = (op & 1) ? d.opsize : 1;
        const unsigned count = (op >= 0xd0 ? 1u : unsigned(d.imm)) & (size == 8 ? 0x3f : 0x1f);
        return count ? FlagUse { 0, w, w, false } : none;
    }
    case 0xc6:
    case 0xc7:
        return r == 0 ? none : barrier; // XABORT, XBEGIN: generic
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b:
    case 0x1b6:
    case 0x1b7:
    case 0x1be:
    case 0x1bf:
    case 0x63:
        return none;
    case 0x90:
        return (d.rex & 1) || d.rep() ? barrier : none; // XCHG r8, PAUSE: generic
    default:
        return barrier;
    }
}

} // namespace kiln::accel::interp
