// SSE/SSE2 and the state instructions around them (FXSAVE/FXRSTOR,
// LDMXCSR/STMXCSR, fences, CLFLUSH, MOVNTI).
//
// The host is x86-64, so packed integer operations map onto SSE2
// intrinsics and floating-point operations run on the host's SSE unit
// under the guest's MXCSR (rounding, DAZ/FTZ), with the exception flags
// they raise folded back into the guest's MXCSR. That is exact by
// construction and fast.
#include <emmintrin.h>

#include <cmath>
#include <cstring>

#include "accel/interp/private/cpu.h"
#include "accel/interp/private/sse.h"
#include "accel/interp/private/x87.h"

namespace kiln::accel::interp {

using namespace x86;
using namespace sse;

// Reads the xmm/m128 (or narrower) source operand.
Vec128 read_xmm_rm(InterpreterImpl& cpu, const DecodedInsn& d, unsigned bytes, bool aligned)
{
    Vec128 v {};
    if (d.mod == 3)
        return cpu.state().fpu.xmm[d.rm];
    Seg seg = cpu.operand_seg(d);
    uint64_t ea = cpu.effective_address(d);
    if (aligned && (ea & 15))
        cpu.raise_gp0();
    if (bytes == 16 && cpu.alignment_checking()) // unaligned forms: 16 under #AC too
        cpu.check_alignment(seg, ea, 16, Access::Read);
    if (bytes == 16) {
        v.q[0] = cpu.read_mem(seg, ea, 8);
        v.q[1] = cpu.read_mem(seg, ea + 8, 8);
    } else {
        v.q[0] = cpu.read_mem(seg, ea, bytes);
    }
    return v;
}

void write_xmm_mem(InterpreterImpl& cpu, const DecodedInsn& d, const Vec128& v, unsigned bytes, bool aligned)
{
    Seg seg = cpu.operand_seg(d);
    uint64_t ea = cpu.effective_address(d);
    if (aligned && (ea & 15))
        cpu.raise_gp0();
    if (bytes == 16 && cpu.alignment_checking())
        cpu.check_alignment(seg, ea, 16, Access::Write);
    if (bytes == 16) {
        // Check both halves before writing either.
        cpu.linear(seg, ea, 16, Access::Write);
        cpu.write_mem(seg, ea, 8, v.q[0]);
        cpu.write_mem(seg, ea + 8, 8, v.q[1]);
    } else {
        cpu.write_mem(seg, ea, bytes, v.q[0]);
    }
}

namespace {

__m128i shuffle_d(__m128i a, uint8_t imm)
{
    alignas(16) uint32_t s[4], r[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(s), a);
    for (int i = 0; i < 4; i++)
        r[i] = s[(imm >> (2 * i)) & 3];
    return _mm_load_si128(reinterpret_cast<const __m128i*>(r));
}

__m128i shuffle_w(__m128i a, uint8_t imm, bool high)
{
    alignas(16) uint16_t s[8], r[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(s), a);
    std::memcpy(r, s, 16);
    unsigned base = high ? 4 : 0;
    for (unsigned i = 0; i < 4; i++)
        r[base + i] = s[base + ((imm >> (2 * i)) & 3)];
    return _mm_load_si128(reinterpret_cast<const __m128i*>(r));
}

__m128i byte_shift(__m128i a, unsigned n, bool left)
{
    alignas(16) uint8_t s[16], r[16] = {};
    _mm_store_si128(reinterpret_cast<__m128i*>(s), a);
    if (n < 16)
        for (unsigned i = 0; i < 16; i++) {
            if (left && i >= n)
                r[i] = s[i - n];
            if (!left && i + n < 16)
                r[i] = s[i + n];
        }
    return _mm_load_si128(reinterpret_cast<const __m128i*>(r));
}

// CMPPS/CMPPD/CMPSS/CMPSD predicate (SSE2 has 0-7).
template<typename T> bool compare_pred(T a, T b, unsigned pred)
{
    bool unordered = std::isnan(a) || std::isnan(b);
    switch (pred & 7) {
    case 0:
        return !unordered && a == b;
    case 1:
        return !unordered && a < b;
    case 2:
        return !unordered && a <= b;
    case 3:
        return unordered;
    case 4:
        return unordered || a != b;
    case 5:
        return unordered || !(a < b);
    case 6:
        return unordered || !(a <= b);
    default:
        return !unordered;
    }
}

} // namespace

// Packed-integer binary operations of the 66 0F D0-FF / 60-6F range.
bool sse_int_binop(uint8_t op, __m128i a, __m128i b, __m128i& r)
{
    switch (op) {
    case 0x60:
        r = _mm_unpacklo_epi8(a, b);
        return true;
    case 0x61:
        r = _mm_unpacklo_epi16(a, b);
        return true;
    case 0x62:
        r = _mm_unpacklo_epi32(a, b);
        return true;
    case 0x63:
        r = _mm_packs_epi16(a, b);
        return true;
    case 0x64:
        r = _mm_cmpgt_epi8(a, b);
        return true;
    case 0x65:
        r = _mm_cmpgt_epi16(a, b);
        return true;
    case 0x66:
        r = _mm_cmpgt_epi32(a, b);
        return true;
    case 0x67:
        r = _mm_packus_epi16(a, b);
        return true;
    case 0x68:
        r = _mm_unpackhi_epi8(a, b);
        return true;
    case 0x69:
        r = _mm_unpackhi_epi16(a, b);
        return true;
    case 0x6a:
        r = _mm_unpackhi_epi32(a, b);
        return true;
    case 0x6b:
        r = _mm_packs_epi32(a, b);
        return true;
    case 0x6c:
        r = _mm_unpacklo_epi64(a, b);
        return true;
    case 0x6d:
        r = _mm_unpackhi_epi64(a, b);
        return true;
    case 0x74:
        r = _mm_cmpeq_epi8(a, b);
        return true;
    case 0x75:
        r = _mm_cmpeq_epi16(a, b);
        return true;
    case 0x76:
        r = _mm_cmpeq_epi32(a, b);
        return true;
    case 0xd1:
        r = _mm_srl_epi16(a, b);
        return true;
    case 0xd2:
        r = _mm_srl_epi32(a, b);
        return true;
    case 0xd3:
        r = _mm_srl_epi64(a, b);
        return true;
    case 0xd4:
        r = _mm_add_epi64(a, b);
        return true;
    case 0xd5:
        r = _mm_mullo_epi16(a, b);
        return true;
    case 0xd8:
        r = _mm_subs_epu8(a, b);
        return true;
    case 0xd9:
        r = _mm_subs_epu16(a, b);
        return true;
    case 0xda:
        r = _mm_min_epu8(a, b);
        return true;
    case 0xdb:
        r = _mm_and_si128(a, b);
        return true;
    case 0xdc:
        r = _mm_adds_epu8(a, b);
        return true;
    case 0xdd:
        r = _mm_adds_epu16(a, b);
        return true;
    case 0xde:
        r = _mm_max_epu8(a, b);
        return true;
    case 0xdf:
        r = _mm_andnot_si128(a, b);
        return true;
    case 0xe0:
        r = _mm_avg_epu8(a, b);
        return true;
    case 0xe1:
        r = _mm_sra_epi16(a, b);
        return true;
    case 0xe2:
        r = _mm_sra_epi32(a, b);
        return true;
    case 0xe3:
        r = _mm_avg_epu16(a, b);
        return true;
    case 0xe4:
        r = _mm_mulhi_epu16(a, b);
        return true;
    case 0xe5:
        r = _mm_mulhi_epi16(a, b);
        return true;
    case 0xe8:
        r = _mm_subs_epi8(a, b);
        return true;
    case 0xe9:
        r = _mm_subs_epi16(a, b);
        return true;
    case 0xea:
        r = _mm_min_epi16(a, b);
        return true;
    case 0xeb:
        r = _mm_or_si128(a, b);
        return true;
    case 0xec:
        r = _mm_adds_epi8(a, b);
        return true;
    case 0xed:
        r = _mm_adds_epi16(a, b);
        return true;
    case 0xee:
        r = _mm_max_epi16(a, b);
        return true;
    case 0xef:
        r = _mm_xor_si128(a, b);
        return true;
    case 0xf1:
        r = _mm_sll_epi16(a, b);
        return true;
    case 0xf2:
        r = _mm_sll_epi32(a, b);
        return true;
    case 0xf3:
        r = _mm_sll_epi64(a, b);
        return true;
    case 0xf4:
        r = _mm_mul_epu32(a, b);
        return true;
    case 0xf5:
        r = _mm_madd_epi16(a, b);
        return true;
    case 0xf6:
        r = _mm_sad_epu8(a, b);
        return true;
    case 0xf8:
        r = _mm_sub_epi8(a, b);
        return true;
    case 0xf9:
        r = _mm_sub_epi16(a, b);
        return true;
    case 0xfa:
        r = _mm_sub_epi32(a, b);
        return true;
    case 0xfb:
        r = _mm_sub_epi64(a, b);
        return true;
    case 0xfc:
        r = _mm_add_epi8(a, b);
        return true;
    case 0xfd:
        r = _mm_add_epi16(a, b);
        return true;
    case 0xfe:
        r = _mm_add_epi32(a, b);
        return true;
    default:
        return false;
    }
}

bool InterpreterImpl::exec_sse(const DecodedInsn& d)
{
    const unsigned op = d.op;
    if (op >= 0x200)
        return exec_sse4(*this, d);
    if (op < 0x110)
        return false;
    const uint8_t b = uint8_t(op);
    const Pfx pfx = mandatory_prefix(d);
    FxsaveArea& fpu = m_s.fpu;

    // Non-SSE opcodes that live in this file.
    switch (op) {
    case 0x1ae: {
        unsigned r = d.reg & 7;
        if (d.mod == 3) {
            if (r >= 5 && pfx == Pfx::None) // LFENCE / MFENCE / SFENCE
                return true;
            raise_ud();
        }
        if (r >= 4 && r <= 6) { // XSAVE, XRSTOR, XSAVEOPT
            if (!exec_xsave(d))
                raise_ud();
            return true;
        }
        Seg seg = operand_seg(d);
        uint64_t ea = effective_address(d);
        if (r <= 1 && (m_s.cr0 & (k_cr0_ts | k_cr0_em))) // FXSAVE/FXRSTOR: #NM with CR0.TS or EM
            raise(k_nm);
        switch (r) {
        case 0: { // FXSAVE
            if (ea & 15)
                raise_gp0();
            FxsaveArea img = fpu;
            if (!m_mode64 || !d.rex_w()) {
                // 32-bit format: FIP/FDP are 32-bit offsets plus selectors (zero here).
                img.fip &= 0xffffffff;
                img.fdp &= 0xffffffff;
            }
            linear(seg, ea, 512, Access::Write);
            write_linear_bytes(linear(seg, ea, 512, Access::Write), &img, m_mode64 ? 416 : 288, m_cpl == 3);
            return true;
        }
        case 1: { // FXRSTOR
            if (ea & 15)
                raise_gp0();
            FxsaveArea img;
            read_linear_bytes(linear(seg, ea, 512, Access::Read), &img, sizeof img, m_cpl == 3);
            if (img.mxcsr & ~fpu.mxcsr_mask)
                raise_gp0();
            unsigned nxmm = m_mode64 ? 16 : 8;
            x87_load_image(fpu, img);
            fpu.mxcsr = img.mxcsr;
            std::memcpy(fpu.xmm, img.xmm, nxmm * 16);
            return true;
        }
        case 2: { // LDMXCSR
            uint32_t v = uint32_t(read_mem(seg, ea, 4));
            if (v & ~fpu.mxcsr_mask)
                raise_gp0();
            fpu.mxcsr = v;
            return true;
        }
        case 3: // STMXCSR
            write_mem(seg, ea, 4, fpu.mxcsr);
            return true;
        case 7: // CLFLUSH
            linear(seg, ea, 1, Access::Read);
            return true;
        default:
            raise_ud();
        }
    }
    case 0x1c3: // MOVNTI
        if (d.mod == 3)
            raise_ud();
        write_rm(d, d.opsize == 8 ? 8 : 4, reg(d.reg, d.opsize == 8 ? 8 : 4));
        return true;
    default:
        break;
    }

    if (exec_mmx(*this, d))
        return true;

    // Everything below needs SSE enabled: CR0.EM clear, CR4.OSFXSR set.
    if ((m_s.cr0 & k_cr0_em) || !(m_s.cr4 & k_cr4_osfxsr))
        raise_ud();
    if (m_s.cr0 & k_cr0_ts)
        raise(k_nm);

    if (exec_sse3(*this, d))
        return true;

    Vec128* xmm = fpu.xmm;
    const unsigned dst = d.reg;
    auto src128 = [&](bool aligned) { return read_xmm_rm(*this, d, 16, aligned); };

    // Packed integer ops (66 prefix): the MMX forms without 66 are not offered.
    if (pfx == Pfx::P66) {
        __m128i r, zero = _mm_setzero_si128();
        // Only a packed-integer opcode reads its m128 operand here (with the
        // alignment check); the others have their own operand shapes.
        if (sse_int_binop(b, zero, zero, r)) {
            sse_int_binop(b, ld(xmm[dst]), ld(src128(true)), r);
            st(xmm[dst], r);
            return true;
        }
    }

    switch (b) {
    case 0x10:
    case 0x11: { // MOVUPS/MOVUPD/MOVSS/MOVSD
        bool load = b == 0x10;
        if (pfx == Pfx::F3 || pfx == Pfx::F2) {
            unsigned n = pfx == Pfx::F3 ? 4 : 8;
            if (load) {
                if (d.mod == 3) {
                    std::memcpy(&xmm[dst], &xmm[d.rm], n);
                } else {
                    Vec128 v = read_xmm_rm(*this, d, n, false);
                    Vec128 z {};
                    std::memcpy(&z, &v, n);
                    xmm[dst] = z;
                }
            } else if (d.mod == 3) {
                std::memcpy(&xmm[d.rm], &xmm[dst], n);
            } else {
                write_xmm_mem(*this, d, xmm[dst], n, false);
            }
            return true;
        }
        if (load)
            xmm[dst] = src128(false);
        else if (d.mod == 3)
            xmm[d.rm] = xmm[dst];
        else
            write_xmm_mem(*this, d, xmm[dst], 16, false);
        return true;
    }
    case 0x12:
    case 0x13: // MOVLPS/MOVLPD/MOVHLPS
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        if (b == 0x13) {
            if (d.mod == 3)
                raise_ud();
            write_xmm_mem(*this, d, xmm[dst], 8, false);
        } else if (d.mod == 3) {
            if (pfx == Pfx::P66)
                raise_ud();
            xmm[dst].q[0] = xmm[d.rm].q[1];
        } else {
            xmm[dst].q[0] = read_xmm_rm(*this, d, 8, false).q[0];
        }
        return true;
    case 0x16:
    case 0x17: // MOVHPS/MOVHPD/MOVLHPS
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        if (b == 0x17) {
            if (d.mod == 3)
                raise_ud();
            Vec128 v {};
            v.q[0] = xmm[dst].q[1];
            write_xmm_mem(*this, d, v, 8, false);
        } else if (d.mod == 3) {
            if (pfx == Pfx::P66)
                raise_ud();
            xmm[dst].q[1] = xmm[d.rm].q[0];
        } else {
            xmm[dst].q[1] = read_xmm_rm(*this, d, 8, false).q[0];
        }
        return true;
    case 0x14:
    case 0x15: { // UNPCKL/HPS/PD
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        __m128 a = ldps(xmm[dst]), s = _mm_castsi128_ps(ld(src128(true)));
        __m128 r;
        if (pfx == Pfx::P66)
            r = _mm_castpd_ps(b == 0x14 ? _mm_unpacklo_pd(_mm_castps_pd(a), _mm_castps_pd(s))
                                        : _mm_unpackhi_pd(_mm_castps_pd(a), _mm_castps_pd(s)));
        else
            r = b == 0x14 ? _mm_unpacklo_ps(a, s) : _mm_unpackhi_ps(a, s);
        st(xmm[dst], _mm_castps_si128(r));
        return true;
    }
    case 0x28:
    case 0x29: // MOVAPS/MOVAPD
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        if (b == 0x28)
            xmm[dst] = src128(true);
        else if (d.mod == 3)
            xmm[d.rm] = xmm[dst];
        else
            write_xmm_mem(*this, d, xmm[dst], 16, true);
        return true;
    case 0x2b: // MOVNTPS/PD
    case 0xe7: // MOVNTDQ
        if (d.mod == 3 || pfx == Pfx::F3 || pfx == Pfx::F2 || (b == 0xe7 && pfx != Pfx::P66))
            raise_ud();
        write_xmm_mem(*this, d, xmm[dst], 16, true);
        return true;
    case 0x2a: { // CVTSI2SS / CVTSI2SD
        if (pfx != Pfx::F3 && pfx != Pfx::F2)
            raise_ud();
        unsigned sz = d.rex_w() ? 8 : 4;
        int64_t v = sz == 8 ? int64_t(read_rm(d, 8)) : int64_t(int32_t(read_rm(d, 4)));
        with_mxcsr(*this, [&] {
            volatile int64_t in = v;
            if (pfx == Pfx::F3) {
                __m128 r = _mm_cvtsi64_ss(ldps(xmm[dst]), in);
                BARRIER(r);
                st(xmm[dst], _mm_castps_si128(r));
            } else {
                __m128d r = _mm_cvtsi64_sd(ldpd(xmm[dst]), in);
                BARRIER(r);
                st(xmm[dst], _mm_castpd_si128(r));
            }
        });
        return true;
    }
    case 0x2c:
    case 0x2d: { // CVT(T)SS2SI / CVT(T)SD2SI
        if (pfx != Pfx::F3 && pfx != Pfx::F2)
            raise_ud();
        Vec128 s = read_xmm_rm(*this, d, pfx == Pfx::F3 ? 4 : 8, false);
        bool wide = d.rex_w();
        int64_t out = 0;
        with_mxcsr(*this, [&] {
            volatile uint64_t in = s.q[0];
            Vec128 v {};
            v.q[0] = in;
            if (pfx == Pfx::F3) {
                __m128 x = ldps(v);
                BARRIER(x);
                if (b == 0x2c)
                    out = wide ? _mm_cvttss_si64(F(x)) : _mm_cvttss_si32(F(x));
                else
                    out = wide ? _mm_cvtss_si64(F(x)) : _mm_cvtss_si32(F(x));
            } else {
                __m128d x = ldpd(v);
                BARRIER(x);
                if (b == 0x2c)
                    out = wide ? _mm_cvttsd_si64(F(x)) : _mm_cvttsd_si32(F(x));
                else
                    out = wide ? _mm_cvtsd_si64(F(x)) : _mm_cvtsd_si32(F(x));
            }
            asm volatile("" : "+r"(out));
        });
        set_reg(d.reg, wide ? 8 : 4, uint64_t(out));
        return true;
    }
    case 0x2e:
    case 0x2f: { // UCOMIS/COMIS
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        bool dbl = pfx == Pfx::P66;
        Vec128 s = read_xmm_rm(*this, d, dbl ? 8 : 4, false);
        uint64_t f = 0;
        with_mxcsr(*this, [&] {
            // The host compare raises the invalid flag exactly as the guest
            // instruction would (SNaN only for UCOMIS, any NaN for COMIS).
            __m128 a = ldps(xmm[dst]), c = ldps(s);
            BARRIER(a);
            BARRIER(c);
            int sink;
            if (dbl && b == 0x2e)
                sink = _mm_ucomieq_sd(F(_mm_castps_pd(a)), F(_mm_castps_pd(c)));
            else if (dbl)
                sink = _mm_comieq_sd(F(_mm_castps_pd(a)), F(_mm_castps_pd(c)));
            else if (b == 0x2e)
                sink = _mm_ucomieq_ss(F(a), F(c));
            else
                sink = _mm_comieq_ss(F(a), F(c));
            asm volatile("" : "+r"(sink));
        });
        {
            double x = dbl ? xmm[dst].df[0] : double(xmm[dst].f[0]);
            double y = dbl ? s.df[0] : double(s.f[0]);
            if (std::isnan(x) || std::isnan(y))
                f = k_flag_zf | k_flag_pf | k_flag_cf;
            else if (x < y)
                f = k_flag_cf;
            else if (x == y)
                f = k_flag_zf;
        }
        set_arith_flags(f);
        return true;
    }
    case 0x50: { // MOVMSKPS/PD
        if (d.mod != 3 || pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        int m = pfx == Pfx::P66 ? _mm_movemask_pd(ldpd(xmm[d.rm])) : _mm_movemask_ps(ldps(xmm[d.rm]));
        set_reg(d.reg, m_mode64 ? 8 : 4, uint32_t(m));
        return true;
    }
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57: { // AND/ANDN/OR/XOR PS/PD
        if (pfx == Pfx::F3 || pfx == Pfx::F2)
            raise_ud();
        __m128i a = ld(xmm[dst]), s = ld(src128(true));
        __m128i r = b == 0x54 ? _mm_and_si128(a, s)
            : b == 0x55       ? _mm_andnot_si128(a, s)
            : b == 0x56       ? _mm_or_si128(a, s)
                              : _mm_xor_si128(a, s);
        st(xmm[dst], r);
        return true;
    }
    case 0x51:
    case 0x58:
    case 0x59:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f:
    case 0x52:
    case 0x53: {
        bool scalar = pfx == Pfx::F3 || pfx == Pfx::F2;
        bool dbl = pfx == Pfx::P66 || pfx == Pfx::F2;
        if ((b == 0x52 || b == 0x53) && dbl)
            raise_ud();
        Vec128 s = scalar ? read_xmm_rm(*this, d, dbl ? 8 : 4, false) : src128(true);
        with_mxcsr(*this, [&] {
            if (dbl) {
                __m128d a = ldpd(xmm[dst]), c = ldpd(s), r;
                BARRIER(a);
                BARRIER(c);
                switch (b) {
                case 0x51:
                    r = scalar ? _mm_sqrt_sd(F(a), F(c)) : _mm_sqrt_pd(F(c));
                    break;
                case 0x58:
                    r = scalar ? _mm_add_sd(F(a), F(c)) : _mm_add_pd(F(a), F(c));
                    break;
                case 0x59:
                    r = scalar ? _mm_mul_sd(F(a), F(c)) : _mm_mul_pd(F(a), F(c));
                    break;
                case 0x5c:
                    r = scalar ? _mm_sub_sd(F(a), F(c)) : _mm_sub_pd(F(a), F(c));
                    break;
                case 0x5d:
                    r = scalar ? _mm_min_sd(F(a), F(c)) : _mm_min_pd(F(a), F(c));
                    break;
                case 0x5e:
                    r = scalar ? _mm_div_sd(F(a), F(c)) : _mm_div_pd(F(a), F(c));
                    break;
                default:
                    r = scalar ? _mm_max_sd(F(a), F(c)) : _mm_max_pd(F(a), F(c));
                    break;
                }
                BARRIER(r);
                st(xmm[dst], _mm_castpd_si128(r));
            } else {
                __m128 a = ldps(xmm[dst]), c = ldps(s), r;
                BARRIER(a);
                BARRIER(c);
                switch (b) {
                case 0x51:
                    r = scalar ? _mm_sqrt_ss(_mm_move_ss(F(a), F(c))) : _mm_sqrt_ps(F(c));
                    break;
                case 0x52:
                    r = scalar ? _mm_move_ss(a, _mm_rsqrt_ss(F(c))) : _mm_rsqrt_ps(F(c));
                    break;
                case 0x53:
                    r = scalar ? _mm_move_ss(a, _mm_rcp_ss(F(c))) : _mm_rcp_ps(F(c));
                    break;
                case 0x58:
                    r = scalar ? _mm_add_ss(F(a), F(c)) : _mm_add_ps(F(a), F(c));
                    break;
                case 0x59:
                    r = scalar ? _mm_mul_ss(F(a), F(c)) : _mm_mul_ps(F(a), F(c));
                    break;
                case 0x5c:
                    r = scalar ? _mm_sub_ss(F(a), F(c)) : _mm_sub_ps(F(a), F(c));
                    break;
                case 0x5d:
                    r = scalar ? _mm_min_ss(F(a), F(c)) : _mm_min_ps(F(a), F(c));
                    break;
                case 0x5e:
                    r = scalar ? _mm_div_ss(F(a), F(c)) : _mm_div_ps(F(a), F(c));
                    break;
                default:
                    r = scalar ? _mm_max_ss(F(a), F(c)) : _mm_max_ps(F(a), F(c));
                    break;
                }
                BARRIER(r);
                st(xmm[dst], _mm_castps_si128(r));
            }
        });
        return true;
    }
    case 0x5a: { // CVTPS2PD / CVTPD2PS / CVTSS2SD / CVTSD2SS
        bool scalar = pfx == Pfx::F3 || pfx == Pfx::F2;
        Vec128 s = scalar ? read_xmm_rm(*this, d, pfx == Pfx::F3 ? 4 : 8, false)
                          : read_xmm_rm(*this, d, pfx == Pfx::P66 ? 16 : 8, pfx == Pfx::P66);
        with_mxcsr(*this, [&] {
            __m128i a = ld(xmm[dst]), c = ld(s), r;
            BARRIER(a);
            BARRIER(c);
            switch (pfx) {
            case Pfx::None:
                r = _mm_castpd_si128(_mm_cvtps_pd(_mm_castsi128_ps(F(c))));
                break;
            case Pfx::P66:
                r = _mm_castps_si128(_mm_cvtpd_ps(_mm_castsi128_pd(F(c))));
                break;
            case Pfx::F3:
                r = _mm_castpd_si128(_mm_cvtss_sd(_mm_castsi128_pd(F(a)), _mm_castsi128_ps(F(c))));
                break;
            default:
                r = _mm_castps_si128(_mm_cvtsd_ss(_mm_castsi128_ps(F(a)), _mm_castsi128_pd(F(c))));
                break;
            }
            BARRIER(r);
            st(xmm[dst], r);
        });
        return true;
    }
    case 0x5b: // CVTDQ2PS / CVTPS2DQ / CVTTPS2DQ
    case 0xe6: { // CVTTPD2DQ / CVTDQ2PD / CVTPD2DQ
        if (pfx == Pfx::F2 && b == 0x5b)
            raise_ud();
        if (pfx == Pfx::None && b == 0xe6)
            raise_ud();
        Vec128 s = (b == 0xe6 && pfx == Pfx::F3) ? read_xmm_rm(*this, d, 8, false) : src128(true);
        with_mxcsr(*this, [&] {
            __m128i c = ld(s), r;
            BARRIER(c);
            if (b == 0x5b)
                r = pfx == Pfx::None  ? _mm_castps_si128(_mm_cvtepi32_ps(F(c)))
                    : pfx == Pfx::P66 ? _mm_cvtps_epi32(_mm_castsi128_ps(F(c)))
                                      : _mm_cvttps_epi32(_mm_castsi128_ps(F(c)));
            else
                r = pfx == Pfx::P66  ? _mm_cvttpd_epi32(_mm_castsi128_pd(F(c)))
                    : pfx == Pfx::F3 ? _mm_castpd_si128(_mm_cvtepi32_pd(F(c)))
                                     : _mm_cvtpd_epi32(_mm_castsi128_pd(F(c)));
            BARRIER(r);
            st(xmm[dst], r);
        });
        return true;
    }
    case 0xc2: { // CMPPS/PD/SS/SD
        bool scalar = pfx == Pfx::F3 || pfx == Pfx::F2;
        bool dbl = pfx == Pfx::P66 || pfx == Pfx::F2;
        Vec128 s = scalar ? read_xmm_rm(*this, d, dbl ? 8 : 4, false) : src128(true);
        unsigned pred = unsigned(d.imm) & 7;
        with_mxcsr(*this, [&] {
            if (dbl) {
                __m128d x = ldpd(xmm[dst]), y = ldpd(s), r;
                BARRIER(x);
                BARRIER(y);
                switch (pred) {
                case 0:
                    r = scalar ? _mm_cmpeq_sd(F(x), F(y)) : _mm_cmpeq_pd(F(x), F(y));
                    break;
                case 1:
                    r = scalar ? _mm_cmplt_sd(F(x), F(y)) : _mm_cmplt_pd(F(x), F(y));
                    break;
                case 2:
                    r = scalar ? _mm_cmple_sd(F(x), F(y)) : _mm_cmple_pd(F(x), F(y));
                    break;
                case 3:
                    r = scalar ? _mm_cmpunord_sd(F(x), F(y)) : _mm_cmpunord_pd(F(x), F(y));
                    break;
                case 4:
                    r = scalar ? _mm_cmpneq_sd(F(x), F(y)) : _mm_cmpneq_pd(F(x), F(y));
                    break;
                case 5:
                    r = scalar ? _mm_cmpnlt_sd(F(x), F(y)) : _mm_cmpnlt_pd(F(x), F(y));
                    break;
                case 6:
                    r = scalar ? _mm_cmpnle_sd(F(x), F(y)) : _mm_cmpnle_pd(F(x), F(y));
                    break;
                default:
                    r = scalar ? _mm_cmpord_sd(F(x), F(y)) : _mm_cmpord_pd(F(x), F(y));
                    break;
                }
                BARRIER(r);
                st(xmm[dst], _mm_castpd_si128(r));
            } else {
                __m128 x = ldps(xmm[dst]), y = ldps(s), r;
                BARRIER(x);
                BARRIER(y);
                switch (pred) {
                case 0:
                    r = scalar ? _mm_cmpeq_ss(F(x), F(y)) : _mm_cmpeq_ps(F(x), F(y));
                    break;
                case 1:
                    r = scalar ? _mm_cmplt_ss(F(x), F(y)) : _mm_cmplt_ps(F(x), F(y));
                    break;
                case 2:
                    r = scalar ? _mm_cmple_ss(F(x), F(y)) : _mm_cmple_ps(F(x), F(y));
                    break;
                case 3:
                    r = scalar ? _mm_cmpunord_ss(F(x), F(y)) : _mm_cmpunord_ps(F(x), F(y));
                    break;
                case 4:
                    r = scalar ? _mm_cmpneq_ss(F(x), F(y)) : _mm_cmpneq_ps(F(x), F(y));
                    break;
                case 5:
                    r = scalar ? _mm_cmpnlt_ss(F(x), F(y)) : _mm_cmpnlt_ps(F(x), F(y));
                    break;
                case 6:
                    r = scalar ? _mm_cmpnle_ss(F(x), F(y)) : _mm_cmpnle_ps(F(x), F(y));
                    break;
                default:
                    r = scalar ? _mm_cmpord_ss(F(x), F(y)) : _mm_cmpord_ps(F(x), F(y));
                    break;
                }
                BARRIER(r);
                st(xmm[dst], _mm_castps_si128(r));
            }
        });
        return true;
    }
    case 0xc6: { // SHUFPS / SHUFPD
        Vec128 s = src128(true);
        Vec128 a = xmm[dst], r {};
        uint8_t imm = uint8_t(d.imm);
        if (pfx == Pfx::P66) {
            r.q[0] = a.q[imm & 1];
            r.q[1] = s.q[(imm >> 1) & 1];
        } else if (pfx == Pfx::None) {
            r.d[0] = a.d[imm & 3];
            r.d[1] = a.d[(imm >> 2) & 3];
            r.d[2] = s.d[(imm >> 4) & 3];
            r.d[3] = s.d[(imm >> 6) & 3];
        } else {
            raise_ud();
        }
        xmm[dst] = r;
        return true;
    }
    default:
        break;
    }

    if (pfx == Pfx::None || (pfx != Pfx::P66 && b != 0x6f && b != 0x7f && b != 0x7e && b != 0x70 && b != 0xd6))
        raise_ud(); // MMX forms and undefined prefix combinations

    switch (b) {
    case 0x6e: // MOVD/MOVQ xmm, r/m
    {
        unsigned sz = d.rex_w() ? 8 : 4;
        Vec128 v {};
        v.q[0] = read_rm(d, sz);
        xmm[dst] = v;
        return true;
    }
    case 0x7e:
        if (pfx == Pfx::F3) { // MOVQ xmm, xmm/m64
            Vec128 v {};
            v.q[0] = read_xmm_rm(*this, d, 8, false).q[0];
            xmm[dst] = v;
            return true;
        }
        if (pfx != Pfx::P66)
            raise_ud();
        write_rm(d, d.rex_w() ? 8 : 4, xmm[dst].q[0]); // MOVD/MOVQ r/m, xmm
        return true;
    case 0x6f: // MOVDQA / MOVDQU
        if (pfx == Pfx::F2)
            raise_ud();
        xmm[dst] = src128(pfx == Pfx::P66);
        return true;
    case 0x7f:
        if (pfx == Pfx::F2)
            raise_ud();
        if (d.mod == 3)
            xmm[d.rm] = xmm[dst];
        else
            write_xmm_mem(*this, d, xmm[dst], 16, pfx == Pfx::P66);
        return true;
    case 0xd6: // MOVQ xmm/m64, xmm
        if (pfx != Pfx::P66)
            raise_ud();
        if (d.mod == 3) {
            Vec128 v {};
            v.q[0] = xmm[dst].q[0];
            xmm[d.rm] = v;
        } else {
            write_xmm_mem(*this, d, xmm[dst], 8, false);
        }
        return true;
    case 0x70: { // PSHUFD / PSHUFHW / PSHUFLW
        __m128i s = ld(src128(pfx == Pfx::P66 || true));
        uint8_t imm = uint8_t(d.imm);
        __m128i r = pfx == Pfx::P66 ? shuffle_d(s, imm) : shuffle_w(s, imm, pfx == Pfx::F3);
        st(xmm[dst], r);
        return true;
    }
    case 0x71:
    case 0x72:
    case 0x73: { // shifts by immediate
        if (d.mod != 3)
            raise_ud();
        unsigned r = d.reg & 7;
        __m128i a = ld(xmm[d.rm]);
        __m128i cnt = _mm_cvtsi32_si128(int(d.imm & 0xff));
        __m128i out;
        if (b == 0x71 && r == 2)
            out = _mm_srl_epi16(a, cnt);
        else if (b == 0x71 && r == 4)
            out = _mm_sra_epi16(a, cnt);
        else if (b == 0x71 && r == 6)
            out = _mm_sll_epi16(a, cnt);
        else if (b == 0x72 && r == 2)
            out = _mm_srl_epi32(a, cnt);
        else if (b == 0x72 && r == 4)
            out = _mm_sra_epi32(a, cnt);
        else if (b == 0x72 && r == 6)
            out = _mm_sll_epi32(a, cnt);
        else if (b == 0x73 && r == 2)
            out = _mm_srl_epi64(a, cnt);
        else if (b == 0x73 && r == 6)
            out = _mm_sll_epi64(a, cnt);
        else if (b == 0x73 && r == 3)
            out = byte_shift(a, unsigned(d.imm & 0xff), false);
        else if (b == 0x73 && r == 7)
            out = byte_shift(a, unsigned(d.imm & 0xff), true);
        else
            raise_ud();
        st(xmm[d.rm], out);
        return true;
    }
    case 0xc4: { // PINSRW
        uint16_t v = uint16_t(read_rm(d, 2));
        xmm[dst].w[d.imm & 7] = v;
        return true;
    }
    case 0xc5: // PEXTRW
        if (d.mod != 3)
            raise_ud();
        set_reg(d.reg, m_mode64 ? 8 : 4, xmm[d.rm].w[d.imm & 7]);
        return true;
    case 0xd7: // PMOVMSKB
        if (d.mod != 3)
            raise_ud();
        set_reg(d.reg, m_mode64 ? 8 : 4, uint32_t(_mm_movemask_epi8(ld(xmm[d.rm]))));
        return true;
    case 0xf7: { // MASKMOVDQU: byte stores to DS:rDI
        if (d.mod != 3)
            raise_ud();
        Seg seg = d.seg != k_no_seg ? Seg(d.seg) : Seg::DS;
        uint64_t di = m_s.gpr[k_rdi] & (d.addrsize == 8 ? ~0ull : d.addrsize == 4 ? 0xffffffff : 0xffff);
        for (unsigned i = 0; i < 16; i++)
            if (xmm[d.rm].b[i] & 0x80)
                write_mem(seg, di + i, 1, xmm[dst].b[i]);
        return true;
    }
    default:
        raise_ud();
    }
}

} // namespace kiln::accel::interp
