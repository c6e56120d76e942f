// VEX-encoded general-purpose instructions: BMI1 (ANDN, BEXTR, BLSI,
// BLSMSK, BLSR) and BMI2 (BZHI, MULX, PDEP, PEXT, RORX, SARX, SHLX, SHRX).
// Everything else VEX encodes is AVX, which Kiln does not offer: #UD.
// BMI needs neither CR4.OSXSAVE nor XCR0 (they gate AVX state only).
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

enum VexPp : uint8_t { k_pp_none = 0, k_pp_66 = 1, k_pp_f3 = 2, k_pp_f2 = 3 };

uint64_t sz_flags(uint64_t r, unsigned size)
{
    uint64_t f = 0;
    if ((r & size_mask(size)) == 0)
        f |= k_flag_zf;
    if ((r >> (size * 8 - 1)) & 1)
        f |= k_flag_sf;
    return f;
}

uint64_t pdep(uint64_t src, uint64_t mask)
{
    uint64_t r = 0;
    for (uint64_t bit = 1; mask; bit <<= 1) {
        uint64_t low = mask & -mask;
        if (src & bit)
            r |= low;
        mask &= mask - 1;
    }
    return r;
}

uint64_t pext(uint64_t src, uint64_t mask)
{
    uint64_t r = 0;
    for (uint64_t bit = 1; mask; bit <<= 1) {
        uint64_t low = mask & -mask;
        if (src & low)
            r |= bit;
        mask &= mask - 1;
    }
    return r;
}

} // namespace

bool InterpreterImpl::exec_vex(const DecodedInsn& d)
{
    // VEX is #UD in real and virtual-8086 mode (there C4/C5 are LES/LDS
    // with a register operand, #UD too).
    if (!(m_s.cr0 & k_cr0_pe) || (m_s.rflags & k_flag_vm))
        raise_ud();
    const bool bmi1 = m_model.features7_ebx() & k_cpuid7_ebx_bmi1;
    const bool bmi2 = m_model.features7_ebx() & k_cpuid7_ebx_bmi2;
    // All BMI forms are VEX.LZ (L must be 0).
    if (d.vex & k_vex_l)
        raise_ud();
    const unsigned size = d.opsize; // 4, or 8 with VEX.W in 64-bit mode
    const unsigned bits = size * 8;
    const uint64_t m = size_mask(size);
    const uint8_t pp = d.vex_pp;

    if (d.op == (k_map_vex | k_map_0f3a | 0xf0)) { // RORX r, r/m, imm8
        if (!bmi2 || pp != k_pp_f2 || d.vvvv != 0)
            raise_ud();
        uint64_t v = read_rm(d, size);
        unsigned c = unsigned(d.imm) & (bits - 1);
        uint64_t r = c ? ((v >> c) | (v << (bits - c))) & m : v;
        set_reg(d.reg, size, r);
        return true;
    }
    if ((d.op & ~0xffu) != (k_map_vex | k_map_0f38))
        raise_ud();
    switch (d.opcode()) {
    case 0xf2: { // ANDN r, vvvv, r/m
        if (!bmi1 || pp != k_pp_none)
            raise_ud();
        uint64_t r = ~reg(d.vvvv, size) & read_rm(d, size) & m;
        set_reg(d.reg, size, r);
        set_arith_flags(sz_flags(r, size));
        return true;
    }
    case 0xf3: { // group 17: BLSR /1, BLSMSK /2, BLSI /3 (vvvv = destination)
        unsigned op = d.reg & 7;
        if (!bmi1 || pp != k_pp_none || op < 1 || op > 3)
            raise_ud();
        uint64_t v = read_rm(d, size);
        uint64_t r = op == 1 ? (v - 1) & v : op == 2 ? (v - 1) ^ v : (0 - v) & v;
        r &= m;
        set_reg(d.vvvv, size, r);
        uint64_t f = sz_flags(r, size);
        if (op == 2)
            f &= ~k_flag_zf; // BLSMSK clears ZF
        if (op == 3 ? v != 0 : (v & m) == 0)
            f |= k_flag_cf;
        set_arith_flags(f);
        return true;
    }
    case 0xf5: {
        if (pp == k_pp_none) { // BZHI r, r/m, vvvv
            if (!bmi2)
                raise_ud();
            uint64_t v = read_rm(d, size);
            unsigned n = unsigned(reg(d.vvvv, size) & 0xff);
            uint64_t r = n < bits ? v & ((1ull << n) - 1) : v;
            r &= m;
            set_reg(d.reg, size, r);
            uint64_t f = sz_flags(r, size);
            if (n > bits - 1)
                f |= k_flag_cf;
            set_arith_flags(f);
            return true;
        }
        if (!bmi2 || pp == k_pp_66)
            raise_ud();
        // PDEP (F2) / PEXT (F3) r, vvvv, r/m (mask); flags unchanged.
        uint64_t src = reg(d.vvvv, size);
        uint64_t mask = read_rm(d, size);
        set_reg(d.reg, size, pp == k_pp_f2 ? pdep(src, mask) : pext(src, mask));
        return true;
    }
    case 0xf6: { // MULX r(high), vvvv(low), r/m: rDX * r/m, flags unchanged
        if (!bmi2 || pp != k_pp_f2)
            raise_ud();
        uint64_t b = read_rm(d, size);
        uint64_t a = m_s.gpr[k_rdx] & m;
        unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
        uint64_t lo = uint64_t(p) & m;
        uint64_t hi = size == 8 ? uint64_t(p >> 64) : uint64_t(p >> 32) & m;
        // Low half first: with the same register for both, the high half wins.
        set_reg(d.vvvv, size, lo);
        set_reg(d.reg, size, hi);
        return true;
    }
    case 0xf7: {
        if (pp == k_pp_none) { // BEXTR r, r/m, vvvv (start = bits 7:0, length = 15:8)
            if (!bmi1)
                raise_ud();
            uint64_t v = read_rm(d, size);
            uint64_t ctl = reg(d.vvvv, size);
            unsigned start = unsigned(ctl & 0xff), len = unsigned((ctl >> 8) & 0xff);
            uint64_t r = start < bits ? v >> start : 0;
            if (len < 64)
                r &= (1ull << len) - 1;
            r &= m;
            set_reg(d.reg, size, r);
            set_arith_flags(r == 0 ? k_flag_zf : 0);
            return true;
        }
        // SHLX (66), SARX (F3), SHRX (F2) r, r/m, vvvv; flags unchanged.
        if (!bmi2)
            raise_ud();
        uint64_t v = read_rm(d, size);
        unsigned c = unsigned(reg(d.vvvv, size)) & (bits - 1);
        uint64_t r;
        if (pp == k_pp_66)
            r = v << c;
        else if (pp == k_pp_f2)
            r = v >> c;
        else
            r = uint64_t(sign_extend(v, size) >> c);
        set_reg(d.reg, size, r & m);
        return true;
    }
    default:
        raise_ud();
    }
}

} // namespace kiln::accel::interp
