// SSSE3, SSE4.1 and SSE4.2 (the 0F 38 and 0F 3A maps): run on the host's
// own units, so results, MXCSR flags and the string-compare flags are the
// hardware's. CpuModel::by_name("max") advertises them only when the host
// has them, and this file is only entered for those opcodes.
#include <immintrin.h>

#include <array>
#include <utility>

#include "accel/interp/private/sse.h"
#include "accel/interp/private/x87.h"

// After the includes: only this file's own functions are compiled for
// SSE4.2, never an inline function from a header that the linker could
// pick for the rest of Kiln.
#pragma GCC target("ssse3,sse4.1,sse4.2")

namespace kiln::accel::interp {

using namespace x86;
using namespace sse;

namespace {


// SSSE3 0F 38 00-0B, 1C-1E on 128 bits.
bool ssse3_op(uint8_t op, __m128i a, __m128i b, __m128i& r)
{
    switch (op) {
    case 0x00:
        r = _mm_shuffle_epi8(a, b);
        return true;
    case 0x01:
        r = _mm_hadd_epi16(a, b);
        return true;
    case 0x02:
        r = _mm_hadd_epi32(a, b);
        return true;
    case 0x03:
        r = _mm_hadds_epi16(a, b);
        return true;
    case 0x04:
        r = _mm_maddubs_epi16(a, b);
        return true;
    case 0x05:
        r = _mm_hsub_epi16(a, b);
        return true;
    case 0x06:
        r = _mm_hsub_epi32(a, b);
        return true;
    case 0x07:
        r = _mm_hsubs_epi16(a, b);
        return true;
    case 0x08:
        r = _mm_sign_epi8(a, b);
        return true;
    case 0x09:
        r = _mm_sign_epi16(a, b);
        return true;
    case 0x0a:
        r = _mm_sign_epi32(a, b);
        return true;
    case 0x0b:
        r = _mm_mulhrs_epi16(a, b);
        return true;
    case 0x1c:
        r = _mm_abs_epi8(b);
        return true;
    case 0x1d:
        r = _mm_abs_epi16(b);
        return true;
    case 0x1e:
        r = _mm_abs_epi32(b);
        return true;
    default:
        return false;
    }
}

// The same on 64-bit MMX operands.
bool ssse3_op64(uint8_t op, uint64_t a, uint64_t b, uint64_t& r)
{
    __m128i x = from64(a), y = from64(b), out;
    switch (op) {
    case 0x00: // PSHUFB: indices use bits 2:0 (and bit 7 zeroes)
        y = from64(b & 0x8787878787878787ull);
        break;
    case 0x01:
    case 0x02:
    case 0x03:
    case 0x05:
    case 0x06:
    case 0x07: // horizontal: a's pairs then b's pairs
        x = _mm_unpacklo_epi64(x, y);
        y = x;
        break;
    default:
        break;
    }
    if (!ssse3_op(op, x, y, out))
        return false;
    r = low64(out);
    return true;
}

// SSE4.1/4.2 0F 38 binary operations on an aligned m128 (66 prefix).
bool sse41_op(uint8_t op, __m128i a, __m128i b, __m128i& r)
{
    switch (op) {
    case 0x28:
        r = _mm_mul_epi32(a, b);
        return true;
    case 0x29:
        r = _mm_cmpeq_epi64(a, b);
        return true;
    case 0x2b:
        r = _mm_packus_epi32(a, b);
        return true;
    case 0x37:
        r = _mm_cmpgt_epi64(a, b);
        return true;
    case 0x38:
        r = _mm_min_epi8(a, b);
        return true;
    case 0x39:
        r = _mm_min_epi32(a, b);
        return true;
    case 0x3a:
        r = _mm_min_epu16(a, b);
        return true;
    case 0x3b:
        r = _mm_min_epu32(a, b);
        return true;
    case 0x3c:
        r = _mm_max_epi8(a, b);
        return true;
    case 0x3d:
        r = _mm_max_epi32(a, b);
        return true;
    case 0x3e:
        r = _mm_max_epu16(a, b);
        return true;
    case 0x3f:
        r = _mm_max_epu32(a, b);
        return true;
    case 0x40:
        r = _mm_mullo_epi32(a, b);
        return true;
    case 0x41:
        r = _mm_minpos_epu16(b);
        return true;
    default:
        return false;
    }
}

// PMOVSX/PMOVZX (0F 38 20-25 / 30-35): source bytes and the conversion.
unsigned pmovx_source_bytes(uint8_t op)
{
    static const unsigned bytes[6] = { 8, 4, 2, 8, 4, 8 };
    return bytes[op & 7];
}

__m128i pmovx(uint8_t op, __m128i s)
{
    switch (op) {
    case 0x20:
        return _mm_cvtepi8_epi16(s);
    case 0x21:
        return _mm_cvtepi8_epi32(s);
    case 0x22:
        return _mm_cvtepi8_epi64(s);
    case 0x23:
        return _mm_cvtepi16_epi32(s);
    case 0x24:
        return _mm_cvtepi16_epi64(s);
    case 0x25:
        return _mm_cvtepi32_epi64(s);
    case 0x30:
        return _mm_cvtepu8_epi16(s);
    case 0x31:
        return _mm_cvtepu8_epi32(s);
    case 0x32:
        return _mm_cvtepu8_epi64(s);
    case 0x33:
        return _mm_cvtepu16_epi32(s);
    case 0x34:
        return _mm_cvtepu16_epi64(s);
    default:
        return _mm_cvtepu32_epi64(s);
    }
}

// Immediate-operand instructions: one instance per immediate value (the
// host instructions take the immediate as a constant). Vec128 in the
// signatures keeps vector attributes out of template arguments.
using ImmFn = Vec128 (*)(Vec128, Vec128);
inline Vec128 out(__m128i v)
{
    Vec128 r;
    st(r, v);
    return r;
}
template<int I> Vec128 round_ps(Vec128, Vec128 b) { return out(_mm_castps_si128(_mm_round_ps(F(ldps(b)), I))); }
template<int I> Vec128 round_pd(Vec128, Vec128 b) { return out(_mm_castpd_si128(_mm_round_pd(F(ldpd(b)), I))); }
template<int I> Vec128 round_ss(Vec128 a, Vec128 b) { return out(_mm_castps_si128(_mm_round_ss(ldps(a), F(ldps(b)), I))); }
template<int I> Vec128 round_sd(Vec128 a, Vec128 b) { return out(_mm_castpd_si128(_mm_round_sd(ldpd(a), F(ldpd(b)), I))); }
template<int I> Vec128 dpps(Vec128 a, Vec128 b) { return out(_mm_castps_si128(_mm_dp_ps(F(ldps(a)), F(ldps(b)), I))); }
template<int I> Vec128 dppd(Vec128 a, Vec128 b) { return out(_mm_castpd_si128(_mm_dp_pd(F(ldpd(a)), F(ldpd(b)), I))); }
template<size_t... Is> constexpr std::array<ImmFn, sizeof...(Is)> round_table(int kind, std::index_sequence<Is...>)
{
    return kind == 0 ? std::array<ImmFn, sizeof...(Is)> { &round_ps<int(Is)>... }
        : kind == 1  ? std::array<ImmFn, sizeof...(Is)> { &round_pd<int(Is)>... }
        : kind == 2  ? std::array<ImmFn, sizeof...(Is)> { &round_ss<int(Is)>... }
                     : std::array<ImmFn, sizeof...(Is)> { &round_sd<int(Is)>... };
}
template<size_t... Is> constexpr std::array<ImmFn, sizeof...(Is)> dp_table(bool dbl, std::index_sequence<Is...>)
{
    return dbl ? std::array<ImmFn, sizeof...(Is)> { &dppd<int(Is)>... }
               : std::array<ImmFn, sizeof...(Is)> { &dpps<int(Is)>... };
}

// PCMPxSTRx on the host: the mask (XMM0) or index (ECX) and the flags.
struct StrResult {
    Vec128 mask;
    uint32_t index;
    uint64_t flags;
};
using StrFn = StrResult (*)(Vec128, Vec128, int, int);

uint64_t str_flags(bool c, bool z, bool sf, bool o)
{
    return (c ? k_flag_cf : 0) | (z ? k_flag_zf : 0) | (sf ? k_flag_sf : 0) | (o ? k_flag_of : 0);
}

template<int I> StrResult pcmpestr(Vec128 av, Vec128 bv, int la, int lb)
{
    __m128i a = ld(av), b = ld(bv);
    return { out(_mm_cmpestrm(a, la, b, lb, I)), uint32_t(_mm_cmpestri(a, la, b, lb, I)),
        str_flags(_mm_cmpestrc(a, la, b, lb, I), _mm_cmpestrz(a, la, b, lb, I), _mm_cmpestrs(a, la, b, lb, I),
            _mm_cmpestro(a, la, b, lb, I)) };
}
template<int I> StrResult pcmpistr(Vec128 av, Vec128 bv, int, int)
{
    __m128i a = ld(av), b = ld(bv);
    return { out(_mm_cmpistrm(a, b, I)), uint32_t(_mm_cmpistri(a, b, I)),
        str_flags(_mm_cmpistrc(a, b, I), _mm_cmpistrz(a, b, I), _mm_cmpistrs(a, b, I), _mm_cmpistro(a, b, I)) };
}
template<size_t... Is> constexpr std::array<StrFn, sizeof...(Is)> str_table(bool explicit_len, std::index_sequence<Is...>)
{
    return explicit_len ? std::array<StrFn, sizeof...(Is)> { &pcmpestr<int(Is)>... }
                        : std::array<StrFn, sizeof...(Is)> { &pcmpistr<int(Is)>... };
}

constexpr auto k_round_ps = round_table(0, std::make_index_sequence<16>());
constexpr auto k_round_pd = round_table(1, std::make_index_sequence<16>());
constexpr auto k_round_ss = round_table(2, std::make_index_sequence<16>());
constexpr auto k_round_sd = round_table(3, std::make_index_sequence<16>());
constexpr auto k_dpps = dp_table(false, std::make_index_sequence<256>());
constexpr auto k_dppd = dp_table(true, std::make_index_sequence<256>());
// Bit 7 of the immediate is ignored by the string instructions.
constexpr auto k_pcmpestr = str_table(true, std::make_index_sequence<128>());
constexpr auto k_pcmpistr = str_table(false, std::make_index_sequence<128>());

// An explicit string length: |value| (32- or 64-bit), saturated to the
// element count.
int string_length(uint64_t v, bool wide, bool words)
{
    int64_t n = wide ? int64_t(v) : int64_t(int32_t(v));
    uint64_t mag = n < 0 ? uint64_t(0) - uint64_t(n) : uint64_t(n);
    unsigned limit = words ? 8 : 16;
    return int(mag > limit ? limit : mag);
}

__m128i mpsadbw(__m128i a, __m128i b, unsigned imm)
{
    alignas(16) uint8_t x[16], y[16];
    alignas(16) uint16_t r[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(x), a);
    _mm_store_si128(reinterpret_cast<__m128i*>(y), b);
    unsigned ao = ((imm >> 2) & 1) * 4, bo = (imm & 3) * 4;
    for (unsigned i = 0; i < 8; i++) {
        unsigned sum = 0;
        for (unsigned j = 0; j < 4; j++) {
            int diff = int(x[ao + i + j]) - int(y[bo + j]);
            sum += unsigned(diff < 0 ? -diff : diff);
        }
        r[i] = uint16_t(sum);
    }
    return _mm_load_si128(reinterpret_cast<const __m128i*>(r));
}

bool is_ssse3(uint8_t b) { return b <= 0x0b || (b >= 0x1c && b <= 0x1e); }

bool is_0f38_sse4(uint8_t b)
{
    return b == 0x10 || b == 0x14 || b == 0x15 || b == 0x17 || (b >= 0x20 && b <= 0x25) || (b >= 0x28 && b <= 0x2b)
        || (b >= 0x30 && b <= 0x35) || (b >= 0x37 && b <= 0x41);
}

bool is_0f3a_sse4(uint8_t b)
{
    return (b >= 0x08 && b <= 0x0f) || (b >= 0x14 && b <= 0x17) || (b >= 0x20 && b <= 0x22)
        || (b >= 0x40 && b <= 0x42) || (b >= 0x60 && b <= 0x63);
}

void check_simd(InterpreterImpl& cpu, bool xmm)
{
    const CpuState& s = cpu.state();
    if ((s.cr0 & k_cr0_em) || (xmm && !(s.cr4 & k_cr4_osfxsr)))
        cpu.raise_ud();
    if (s.cr0 & k_cr0_ts)
        cpu.raise(k_nm);
}

bool exec_crc32(InterpreterImpl& cpu, const DecodedInsn& d)
{
    unsigned src_size = d.opcode() == 0xf0 ? 1 : d.rex_w() ? 8 : d.has_66() ? 2 : 4;
    uint64_t src = cpu.read_rm(d, src_size);
    uint32_t crc = uint32_t(cpu.reg(d.reg, 4));
    switch (src_size) {
    case 1:
        crc = _mm_crc32_u8(crc, uint8_t(src));
        break;
    case 2:
        crc = _mm_crc32_u16(crc, uint16_t(src));
        break;
    case 4:
        crc = _mm_crc32_u32(crc, uint32_t(src));
        break;
    default:
        crc = uint32_t(_mm_crc32_u64(crc, src));
        break;
    }
    cpu.set_reg(d.reg, d.rex_w() ? 8 : 4, crc);
    return true;
}

} // namespace

bool exec_sse4(InterpreterImpl& cpu, const DecodedInsn& d)
{
    const bool map38 = (d.op >> 8) == 2;
    const uint8_t b = d.opcode();
    const Pfx pfx = mandatory_prefix(d);
    if (map38 && pfx == Pfx::F2 && (b == 0xf0 || b == 0xf1))
        return exec_crc32(cpu, d);
    const bool mmx = pfx == Pfx::None && (map38 ? is_ssse3(b) : b == 0x0f);
    const bool xmm = pfx == Pfx::P66 && (map38 ? (is_ssse3(b) || is_0f38_sse4(b)) : is_0f3a_sse4(b));
    if (!mmx && !xmm)
        return false;
    check_simd(cpu, xmm);
    CpuState& s = cpu.state();

    if (mmx) {
        x87_check_pending(cpu);
        MmxRegs mm(s.fpu);
        unsigned dst = d.reg & 7;
        uint64_t src = d.mod == 3 ? mm.get(d.rm & 7) : cpu.read_mem(cpu.operand_seg(d), cpu.effective_address(d), 8);
        uint64_t a = mm.get(dst), r = 0;
        if (!map38) { // PALIGNR mm, mm/m64, imm8: (dst:src) >> imm bytes
            unsigned n = unsigned(d.imm & 0xff);
            unsigned __int128 cat = (static_cast<unsigned __int128>(a) << 64) | src;
            r = n >= 16 ? 0 : uint64_t(cat >> (8 * n));
        } else {
            ssse3_op64(b, a, src, r);
        }
        mm.set(dst, r);
        return true;
    }

    Vec128* x = s.fpu.xmm;
    const unsigned dst = d.reg;
    const __m128i a = ld(x[dst]);
    const unsigned imm = unsigned(d.imm & 0xff);
    __m128i r;
    if (map38) {
        if (is_ssse3(b)) {
            ssse3_op(b, a, ld(read_xmm_rm(cpu, d, 16, true)), r);
            st(x[dst], r);
            return true;
        }
        if ((b >= 0x20 && b <= 0x25) || (b >= 0x30 && b <= 0x35)) {
            st(x[dst], pmovx(b, ld(read_xmm_rm(cpu, d, pmovx_source_bytes(b), false))));
            return true;
        }
        if (b == 0x2a) { // MOVNTDQA xmm, m128
            if (d.mod == 3)
                cpu.raise_ud();
            x[dst] = read_xmm_rm(cpu, d, 16, true);
            return true;
        }
        const __m128i src = ld(read_xmm_rm(cpu, d, 16, true));
        switch (b) {
        case 0x10:
            st(x[dst], _mm_blendv_epi8(a, src, ld(x[0])));
            return true;
        case 0x14:
            st(x[dst], _mm_castps_si128(_mm_blendv_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(src), _mm_castsi128_ps(ld(x[0])))));
            return true;
        case 0x15:
            st(x[dst], _mm_castpd_si128(_mm_blendv_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(src), _mm_castsi128_pd(ld(x[0])))));
            return true;
        case 0x17: { // PTEST: ZF = (a & src) == 0, CF = (~a & src) == 0
            uint64_t f = (_mm_testz_si128(a, src) ? k_flag_zf : 0) | (_mm_testc_si128(a, src) ? k_flag_cf : 0);
            cpu.set_arith_flags(f);
            return true;
        }
        default:
            sse41_op(b, a, src, r);
            st(x[dst], r);
            return true;
        }
    }

    switch (b) {
    case 0x08:
    case 0x09:
    case 0x0a:
    case 0x0b: { // ROUNDPS/PD/SS/SD
        unsigned bytes = b == 0x0a ? 4 : b == 0x0b ? 8 : 16;
        Vec128 src = read_xmm_rm(cpu, d, bytes, bytes == 16), res;
        const auto& table = b == 0x08 ? k_round_ps : b == 0x09 ? k_round_pd : b == 0x0a ? k_round_ss : k_round_sd;
        with_mxcsr(cpu, [&] { res = table[imm & 15](x[dst], src); });
        x[dst] = res;
        return true;
    }
    case 0x0c:
    case 0x0d:
    case 0x0e: { // BLENDPS / BLENDPD / PBLENDW
        Vec128 src = read_xmm_rm(cpu, d, 16, true), out = x[dst];
        if (b == 0x0c) {
            for (unsigned i = 0; i < 4; i++)
                if (imm & (1u << i))
                    out.d[i] = src.d[i];
        } else if (b == 0x0d) {
            for (unsigned i = 0; i < 2; i++)
                if (imm & (1u << i))
                    out.q[i] = src.q[i];
        } else {
            for (unsigned i = 0; i < 8; i++)
                if (imm & (1u << i))
                    out.w[i] = src.w[i];
        }
        x[dst] = out;
        return true;
    }
    case 0x0f: { // PALIGNR: (dst:src) >> imm bytes
        Vec128 src = read_xmm_rm(cpu, d, 16, true), out {};
        uint8_t cat[32];
        std::memcpy(cat, &src, 16);
        std::memcpy(cat + 16, &x[dst], 16);
        for (unsigned i = 0; i < 16; i++)
            out.b[i] = i + imm < 32 ? cat[i + imm] : 0;
        x[dst] = out;
        return true;
    }
    case 0x14:
    case 0x15:
    case 0x16:
    case 0x17: { // PEXTRB/W/D/Q, EXTRACTPS: xmm (reg) -> r/m
        unsigned size = b == 0x14 ? 1 : b == 0x15 ? 2 : (b == 0x16 && d.rex_w()) ? 8 : 4;
        uint64_t v = 0;
        std::memcpy(&v, x[dst].b + (imm & (16 / size - 1)) * size, size);
        if (d.mod == 3)
            cpu.set_reg(d.rm, size == 8 ? 8 : cpu.mode64() ? 8 : 4, v);
        else
            cpu.write_mem(cpu.operand_seg(d), cpu.effective_address(d), size, v);
        return true;
    }
    case 0x20:
    case 0x22: { // PINSRB / PINSRD / PINSRQ
        unsigned size = b == 0x20 ? 1 : d.rex_w() ? 8 : 4;
        // A register source is r32/r64: PINSRB takes its low byte (never AH..BH).
        uint64_t v = d.mod == 3 ? cpu.reg(d.rm, size == 8 ? 8 : 4) : cpu.read_rm(d, size);
        std::memcpy(x[dst].b + (imm & (16 / size - 1)) * size, &v, size);
        return true;
    }
    case 0x21: { // INSERTPS
        uint32_t v = d.mod == 3 ? x[d.rm].d[(imm >> 6) & 3] : uint32_t(read_xmm_rm(cpu, d, 4, false).d[0]);
        Vec128 out = x[dst];
        out.d[(imm >> 4) & 3] = v;
        for (unsigned i = 0; i < 4; i++)
            if (imm & (1u << i))
                out.d[i] = 0;
        x[dst] = out;
        return true;
    }
    case 0x40:
    case 0x41: { // DPPS / DPPD
        Vec128 src = read_xmm_rm(cpu, d, 16, true), res;
        with_mxcsr(cpu, [&] { res = (b == 0x40 ? k_dpps : k_dppd)[imm](x[dst], src); });
        x[dst] = res;
        return true;
    }
    case 0x42: // MPSADBW
        st(x[dst], mpsadbw(a, ld(read_xmm_rm(cpu, d, 16, true)), imm));
        return true;
    default: { // 60-63: PCMPESTRM/ESTRI/ISTRM/ISTRI (no alignment requirement)
        Vec128 src = read_xmm_rm(cpu, d, 16, false);
        bool explicit_len = b <= 0x61;
        bool words = imm & 1;
        int la = explicit_len ? string_length(s.gpr[k_rax], d.rex_w(), words) : 0;
        int lb = explicit_len ? string_length(s.gpr[k_rdx], d.rex_w(), words) : 0;
        StrResult res = (explicit_len ? k_pcmpestr : k_pcmpistr)[imm & 0x7f](x[dst], src, la, lb);
        if (b & 1)
            cpu.set_reg(k_rcx, 4, res.index);
        else
            x[0] = res.mask;
        cpu.set_arith_flags(res.flags);
        return true;
    }
    }
}

} // namespace kiln::accel::interp
