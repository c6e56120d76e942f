// MMX: the eight 64-bit MMX registers, the packed-integer instructions
// without a 66 prefix (plus the SSE and SSE2 additions that work on MMX
// registers: PSHUFW, PINSRW/PEXTRW, PMOVMSKB, PAVG/PMIN/PMAX, PSADBW,
// PMULHUW, MASKMOVQ, MOVNTQ, PADDQ/PSUBQ/PMULUDQ), EMMS, and the
// conversions between MMX and XMM registers (CVTPI2PS/PD, CVT(T)PS2PI,
// CVT(T)PD2PI, MOVQ2DQ, MOVDQ2Q).
//
// MMi is the low 64 bits of physical x87 register Ri. The interpreter keeps
// the x87 registers in FXSAVE order (ST(i), relative to TOP), so MMi is
// ST((i - TOP) & 7). Every MMX instruction leaves TOP = 0 and all tags
// valid (EMMS: all empty), and a write to MMi sets bits 64-79 of Ri to ones (SDM vol. 1,
// 9.5); that transition happens when the instruction completes, so an
// instruction that faults leaves the x87 state alone.
#include <cstring>

#include "accel/interp/private/sse.h"
#include "accel/interp/private/x87.h"

namespace kiln::accel::interp {

using namespace x86;
using namespace sse;

namespace {


// The packed-integer operations on 64-bit operands. Lane-wise operations
// run on the low half of the 128-bit forms; the unpack-high and pack
// forms need their inputs rearranged first.
bool mmx_binop(uint8_t op, uint64_t a, uint64_t b, uint64_t& r)
{
    if (op == 0x6c || op == 0x6d) // PUNPCKL/HQDQ exist only for XMM
        return false;
    __m128i x = from64(a), y = from64(b), out;
    switch (op) {
    case 0x68:
    case 0x69:
    case 0x6a: // PUNPCKH*: interleave the high halves
        x = from64(a >> 32);
        y = from64(b >> 32);
        op = uint8_t(op - 8);
        break;
    case 0x63:
    case 0x67:
    case 0x6b: // PACK*: a's lanes then b's lanes
        x = _mm_unpacklo_epi64(x, y);
        y = x;
        break;
    default:
        break;
    }
    if (!sse_int_binop(op, x, y, out))
        return false;
    r = low64(out);
    return true;
}

uint64_t shuffle_words(uint64_t v, uint8_t imm)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 4; i++)
        r |= ((v >> (16 * ((imm >> (2 * i)) & 3))) & 0xffff) << (16 * i);
    return r;
}

bool is_mmx_opcode(uint8_t b)
{
    return (b >= 0x60 && b <= 0x7f && b != 0x78 && b != 0x79 && b != 0x7a && b != 0x7b && b != 0x7c && b != 0x7d)
        || b == 0xc4 || b == 0xc5 || (b >= 0xd1 && b != 0xd6 && b != 0xe6 && b != 0xf0 && b != 0xff);
}

} // namespace

bool exec_mmx(InterpreterImpl& cpu, const DecodedInsn& d)
{
    const unsigned op = d.op;
    if (op < 0x100 || op > 0x1ff)
        return false;
    const uint8_t b = uint8_t(op);
    const Pfx pfx = mandatory_prefix(d);
    const bool cvt = b == 0x2a || b == 0x2c || b == 0x2d;
    const bool cross = b == 0xd6 && (pfx == Pfx::F3 || pfx == Pfx::F2); // MOVQ2DQ / MOVDQ2Q
    if (!((pfx == Pfx::None && (is_mmx_opcode(b) || cvt)) || (pfx == Pfx::P66 && cvt) || cross))
        return false;

    CpuState& s = cpu.state();
    if (s.cr0 & k_cr0_em)
        cpu.raise_ud();
    if ((cvt || cross) && !(s.cr4 & k_cr4_osfxsr))
        cpu.raise_ud();
    if (s.cr0 & k_cr0_ts)
        cpu.raise(k_nm);
    x87_check_pending(cpu);

    FxsaveArea& fpu = s.fpu;
    MmxRegs mm(fpu);
    const unsigned dst = d.reg & 7; // REX.R/B do not extend MMX registers
    auto src64 = [&]() -> uint64_t {
        if (d.mod == 3)
            return mm.get(d.rm & 7);
        return cpu.read_mem(cpu.operand_seg(d), cpu.effective_address(d), 8);
    };

    if (cvt || cross) {
        Vec128* xmm = fpu.xmm;
        switch (b) {
        case 0x2a: { // CVTPI2PS xmm, mm/m64 / CVTPI2PD xmm, mm/m64
            uint64_t v = src64();
            if (pfx == Pfx::P66) {
                st(xmm[d.reg], _mm_castpd_si128(_mm_cvtepi32_pd(from64(v))));
            } else {
                with_mxcsr(cpu, [&] {
                    __m128i in = from64(v);
                    BARRIER(in);
                    __m128 r = _mm_cvtepi32_ps(F(in));
                    BARRIER(r);
                    xmm[d.reg].q[0] = low64(_mm_castps_si128(r));
                });
            }
            if (d.mod == 3)
                mm.enter();
            return true;
        }
        case 0x2c:
        case 0x2d: { // CVT(T)PS2PI mm, xmm/m64 / CVT(T)PD2PI mm, xmm/m128
            Vec128 v {};
            if (d.mod == 3) {
                v = xmm[d.rm];
                if (pfx == Pfx::None)
                    v.q[1] = 0;
            } else {
                Seg seg = cpu.operand_seg(d);
                uint64_t ea = cpu.effective_address(d);
                if (pfx == Pfx::P66) {
                    if (ea & 15)
                        cpu.raise_gp0();
                    v.q[1] = cpu.read_mem(seg, ea + 8, 8);
                }
                v.q[0] = cpu.read_mem(seg, ea, 8);
            }
            uint64_t out = 0;
            with_mxcsr(cpu, [&] {
                __m128i in = ld(v);
                BARRIER(in);
                __m128i r;
                if (pfx == Pfx::P66)
                    r = b == 0x2c ? _mm_cvttpd_epi32(_mm_castsi128_pd(F(in)))
                                  : _mm_cvtpd_epi32(_mm_castsi128_pd(F(in)));
                else
                    r = b == 0x2c ? _mm_cvttps_epi32(_mm_castsi128_ps(F(in)))
                                  : _mm_cvtps_epi32(_mm_castsi128_ps(F(in)));
                BARRIER(r);
                out = low64(r);
            });
            mm.set(dst, out);
            return true;
        }
        default: // D6
            if (d.mod != 3)
                cpu.raise_ud();
            if (pfx == Pfx::F3) { // MOVQ2DQ xmm, mm
                Vec128 v {};
                v.q[0] = mm.get(d.rm & 7);
                xmm[d.reg] = v;
                mm.enter();
            } else { // MOVDQ2Q mm, xmm
                mm.set(dst, xmm[d.rm].q[0]);
            }
            return true;
        }
    }

    uint64_t r;
    if (mmx_binop(b, 0, 0, r)) {
        uint64_t a = mm.get(dst);
        mmx_binop(b, a, src64(), r);
        mm.set(dst, r);
        return true;
    }

    switch (b) {
    case 0x77: // EMMS: TOP = 0 as well (measured), then all tags empty
        mm.enter();
        fpu.ftw = 0;
        return true;
    case 0x6e: // MOVD/MOVQ mm, r/m
        mm.set(dst, cpu.read_rm(d, d.rex_w() ? 8 : 4));
        return true;
    case 0x7e: // MOVD/MOVQ r/m, mm
        cpu.write_rm(d, d.rex_w() ? 8 : 4, mm.get(dst));
        mm.enter();
        return true;
    case 0x6f: // MOVQ mm, mm/m64
        mm.set(dst, src64());
        return true;
    case 0x7f: // MOVQ mm/m64, mm
    case 0xe7: // MOVNTQ m64, mm
        if (d.mod == 3) {
            if (b == 0xe7)
                cpu.raise_ud();
            mm.set(d.rm & 7, mm.get(dst));
        } else {
            cpu.write_mem(cpu.operand_seg(d), cpu.effective_address(d), 8, mm.get(dst));
            mm.enter();
        }
        return true;
    case 0x70: // PSHUFW mm, mm/m64, imm8
        mm.set(dst, shuffle_words(src64(), uint8_t(d.imm)));
        return true;
    case 0x71:
    case 0x72:
    case 0x73: { // shifts by immediate
        if (d.mod != 3)
            cpu.raise_ud();
        unsigned g = d.reg & 7;
        __m128i a = from64(mm.get(d.rm & 7));
        __m128i cnt = _mm_cvtsi32_si128(int(d.imm & 0xff));
        __m128i out;
        if (b == 0x71 && g == 2)
            out = _mm_srl_epi16(a, cnt);
        else if (b == 0x71 && g == 4)
            out = _mm_sra_epi16(a, cnt);
        else if (b == 0x71 && g == 6)
            out = _mm_sll_epi16(a, cnt);
        else if (b == 0x72 && g == 2)
            out = _mm_srl_epi32(a, cnt);
        else if (b == 0x72 && g == 4)
            out = _mm_sra_epi32(a, cnt);
        else if (b == 0x72 && g == 6)
            out = _mm_sll_epi32(a, cnt);
        else if (b == 0x73 && g == 2)
            out = _mm_srl_epi64(a, cnt);
        else if (b == 0x73 && g == 6)
            out = _mm_sll_epi64(a, cnt);
        else
            cpu.raise_ud(); // PSRLDQ/PSLLDQ are XMM-only
        mm.set(d.rm & 7, low64(out));
        return true;
    }
    case 0xc4: { // PINSRW mm, r32/m16, imm8
        uint64_t w = cpu.read_rm(d, 2);
        unsigned sh = 16 * (d.imm & 3);
        mm.set(dst, (mm.get(dst) & ~(0xffffull << sh)) | (w << sh));
        return true;
    }
    case 0xc5: // PEXTRW r32, mm, imm8
        if (d.mod != 3)
            cpu.raise_ud();
        cpu.set_reg(d.reg, cpu.mode64() ? 8 : 4, (mm.get(d.rm & 7) >> (16 * (d.imm & 3))) & 0xffff);
        mm.enter();
        return true;
    case 0xd7: { // PMOVMSKB r32, mm
        if (d.mod != 3)
            cpu.raise_ud();
        uint64_t v = mm.get(d.rm & 7);
        unsigned m = 0;
        for (unsigned i = 0; i < 8; i++)
            m |= unsigned((v >> (8 * i + 7)) & 1) << i;
        cpu.set_reg(d.reg, cpu.mode64() ? 8 : 4, m);
        mm.enter();
        return true;
    }
    case 0xf7: { // MASKMOVQ mm1, mm2: byte stores to DS:rDI
        if (d.mod != 3)
            cpu.raise_ud();
        Seg seg = d.seg != k_no_seg ? Seg(d.seg) : Seg::DS;
        uint64_t di = s.gpr[k_rdi] & (d.addrsize == 8 ? ~0ull : d.addrsize == 4 ? 0xffffffff : 0xffff);
        uint64_t v = mm.get(dst), mask = mm.get(d.rm & 7);
        for (unsigned i = 0; i < 8; i++)
            if ((mask >> (8 * i + 7)) & 1)
                cpu.write_mem(seg, di + i, 1, (v >> (8 * i)) & 0xff);
        mm.enter();
        return true;
    }
    default:
        cpu.raise_ud();
    }
}

} // namespace kiln::accel::interp
