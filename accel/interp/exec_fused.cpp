// Compare-and-branch fusion: CMP/SUB/TEST/AND followed by Jcc in one
// handler. The pair runs without the lazy-flags round trip (the condition
// comes straight from the operands) and without a dispatch between the
// two; the flags are recorded only when the branch is taken (the target's
// use of them is unknown) or when something after the fall-through reads
// them before overwriting them (the block's liveness pass decides).
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/fast_operands.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;
using namespace fast;

namespace {

// The 16 conditions after a subtraction a - b = r (S-byte operands, masked),
// branch-free: bit n of `bits` is condition 2n, the odd ones its negation.
template <unsigned S>
[[gnu::always_inline]] inline bool sub_cond(uint64_t a, uint64_t b, uint64_t r, unsigned cc)
{
    constexpr unsigned top = S * 8 - 1;
    constexpr unsigned sh = 64 - S * 8;
    const int64_t sa = int64_t(a << sh), sb = int64_t(b << sh);
    const uint32_t bits = uint32_t((((a ^ b) & (a ^ r)) >> top) & 1) // O
        | (uint32_t(a < b) << 1) // B
        | (uint32_t(a == b) << 2) // E
        | (uint32_t(a <= b) << 3) // BE
        | (uint32_t((r >> top) & 1) << 4) // S
        | (uint32_t(parity_even(r)) << 5) // P
        | (uint32_t(sa < sb) << 6) // L
        | (uint32_t(sa <= sb) << 7); // LE
    return ((bits >> (cc >> 1)) ^ cc) & 1;
}

// After AND/TEST: CF = OF = 0.
template <unsigned S>
[[gnu::always_inline]] inline bool logic_cond(uint64_t r, unsigned cc)
{
    const uint32_t z = r == 0, s = (r >> (S * 8 - 1)) & 1;
    const uint32_t bits = (z << 2) | (z << 3) | (s << 4) | (uint32_t(parity_even(r)) << 5) | (s << 6) | ((z | s) << 7);
    return ((bits >> (cc >> 1)) ^ cc) & 1;
}

enum Form : unsigned {
    RmR = 0, // op r/m, r
    RRm = 1, // op r, r/m
    RmImm = 2, // op r/m, imm
    AccImm = 3, // op AL/eAX/rAX, imm
};

// Op: 5 SUB, 7 CMP (subtractions), 4 AND, 8 TEST (logic). Mem: the r/m
// operand is memory (CMP/TEST only: they do not write it). LiveFall: the
// flags are read after the fall-through; memory forms always record them
// (an MMIO read ends the block after the pair).
template <unsigned Op, unsigned S, unsigned F, bool Mem, bool LiveFall>
void alu_jcc(InterpreterImpl& cpu, const DecodedInsn& d)
{
    constexpr uint64_t m = mask_of<S>();
    constexpr bool sub = Op == 5 || Op == 7;
    uint64_t a, b;
    if constexpr (F == RmR) {
        a = get_rm<S, Mem>(cpu, d);
        b = get_r<S>(cpu, d.reg);
    } else if constexpr (F == RRm) {
        a = get_r<S>(cpu, d.reg);
        b = get_rm<S, Mem>(cpu, d);
    } else if constexpr (F == RmImm) {
        a = get_rm<S, Mem>(cpu, d);
        b = uint64_t(sign_extend(d.imm, d.imm_size)) & m;
    } else {
        a = get_r<S>(cpu, k_rax);
        b = uint64_t(sign_extend(d.imm, d.imm_size)) & m;
    }
    const uint64_t r = sub ? (a - b) & m : a & b;
    const DecodedInsn& j = reinterpret_cast<const BlockInsn*>(&d)[1].d;
    const unsigned cc = j.op & 0xf;
    const bool taken = sub ? sub_cond<S>(a, b, r, cc) : logic_cond<S>(r, cc);
    if constexpr (Op == 5 || Op == 4) {
        static_assert(!Mem);
        if constexpr (F == RRm)
            set_r<S>(cpu, d.reg, r);
        else if constexpr (F == AccImm)
            set_r<S>(cpu, k_rax, r);
        else
            set_r<S>(cpu, d.rm, r);
    }
    if (taken || LiveFall || Mem) {
        if constexpr (sub)
            cpu.lazy().set(FlagOp::Sub, S, r, a, b);
        else
            cpu.lazy().set(FlagOp::Logic, S, r, 0, 0);
    }
    // The first instruction retired; the Jcc is the current one now.
    cpu.step_fused(j);
    if (taken)
        cpu.jump_near(cpu.next_rip() + uint64_t(sign_extend(j.imm, j.imm_size)));
    cpu.chain(j);
}

template <unsigned Op, unsigned F, bool Mem, bool LiveFall>
ExecFn by_size(unsigned size)
{
    switch (size) {
    case 1:
        return &alu_jcc<Op, 1, F, Mem, LiveFall>;
    case 4:
        return &alu_jcc<Op, 4, F, Mem, LiveFall>;
    case 8:
        return &alu_jcc<Op, 8, F, Mem, LiveFall>;
    default:
        return nullptr; // 16-bit operands: not worth the instantiations
    }
}

template <unsigned Op, unsigned F>
ExecFn by_form(unsigned size, bool mem, bool live_fall)
{
    if (mem) {
        if constexpr (Op == 7 || Op == 8)
            return by_size<Op, F, true, true>(size);
        return nullptr; // SUB/AND to memory: not fused
    }
    return live_fall ? by_size<Op, F, false, true>(size) : by_size<Op, F, false, false>(size);
}

template <unsigned Op>
ExecFn by_op(unsigned form, unsigned size, bool mem, bool live_fall)
{
    switch (form) {
    case RmR:
        return by_form<Op, RmR>(size, mem, live_fall);
    case RRm:
        if constexpr (Op == 8)
            return nullptr; // TEST has no r, r/m form
        else
            return by_form<Op, RRm>(size, mem, live_fall);
    case RmImm:
        return by_form<Op, RmImm>(size, mem, live_fall);
    default:
        return by_form<Op, AccImm>(size, false, live_fall);
    }
}

} // namespace

ExecFn select_fused(const DecodedInsn& d, const DecodedInsn& jcc, bool live_fall)
{
    if (!((jcc.op >= 0x70 && jcc.op <= 0x7f) || (jcc.op >= 0x180 && jcc.op <= 0x18f)) || jcc.opsize == 2)
        return nullptr; // 66-prefixed Jcc truncates the target: generic
    if (d.lock())
        return nullptr;
    const unsigned op = d.op;
    unsigned alu;
    unsigned form;
    unsigned size;
    if (op < 0x40 && (op & 7) < 6) {
        alu = (op >> 3) & 7;
        form = (op & 7) < 2 ? RmR : (op & 7) < 4 ? RRm : AccImm;
        size = (op & 1) ? d.opsize : 1;
    } else if (op == 0x80 || op == 0x81 || op == 0x83) {
        alu = d.reg & 7;
        form = RmImm;
        size = op == 0x80 ? 1 : d.opsize;
    } else if (op == 0x84 || op == 0x85) {
        alu = 8;
        form = RmR;
        size = op == 0x84 ? 1 : d.opsize;
    } else if (op == 0xa8 || op == 0xa9) {
        alu = 8;
        form = AccImm;
        size = op == 0xa8 ? 1 : d.opsize;
    } else if ((op == 0xf6 || op == 0xf7) && (d.reg & 7) == 0) {
        alu = 8;
        form = RmImm;
        size = op == 0xf6 ? 1 : d.opsize;
    } else {
        return nullptr;
    }
    // Byte registers 4-7 without REX are AH..BH: get_r<1> handles them.
    const bool mem = d.is_mem();
    switch (alu) {
    case 7:
        return by_op<7>(form, size, mem, live_fall);
    case 5:
        return by_op<5>(form, size, mem, live_fall);
    case 4:
        return by_op<4>(form, size, mem, live_fall);
    case 8:
        return by_op<8>(form, size, mem, live_fall);
    default:
        return nullptr;
    }
}

} // namespace kiln::accel::interp
