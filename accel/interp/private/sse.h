// Helpers shared by the SSE and MMX executors: host SSE2 register access,
// running host SSE code under the guest's MXCSR, and the packed-integer
// operations both register files use (MMX runs them on the low 64 bits).
#pragma once

#include <emmintrin.h>

#include <cstdint>
#include <cstring>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp::sse {

inline __m128i ld(const x86::Vec128& v) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(&v)); }
inline void st(x86::Vec128& v, __m128i x) { _mm_storeu_si128(reinterpret_cast<__m128i*>(&v), x); }
inline __m128 ldps(const x86::Vec128& v) { return _mm_castsi128_ps(ld(v)); }
inline __m128d ldpd(const x86::Vec128& v) { return _mm_castsi128_pd(ld(v)); }

// Runs `fn` on the host SSE unit with the guest's MXCSR control bits and
// merges the exception flags it raises into the guest MXCSR.
template<typename Fn> void with_mxcsr(InterpreterImpl& cpu, Fn fn)
{
    uint32_t& guest = cpu.state().fpu.mxcsr;
    uint32_t host = _mm_getcsr();
    _mm_setcsr((guest & ~0x3fu) | 0x1f80);
    fn();
    uint32_t flags = _mm_getcsr() & 0x3f;
    _mm_setcsr(host);
    guest |= flags;
    uint32_t unmasked = flags & ~(guest >> 7) & 0x3f;
    if (unmasked)
        cpu.raise(cpu.state().cr4 & x86::k_cr4_osxmmexcpt ? k_xm : k_ud);
}

inline uint64_t low64(__m128i x) { return uint64_t(_mm_cvtsi128_si64(x)); }
inline __m128i from64(uint64_t v) { return _mm_cvtsi64_si128(int64_t(v)); }

// The mandatory prefix selecting an SSE form (F3 and F2 win over 66).
enum class Pfx { None, P66, F3, F2 };

inline Pfx mandatory_prefix(const DecodedInsn& d)
{
    if (d.rep())
        return Pfx::F3;
    if (d.repne())
        return Pfx::F2;
    if (d.has_66())
        return Pfx::P66;
    return Pfx::None;
}

#define BARRIER(x) asm volatile("" : "+x"(x))

// An optimisation fence on an operand: the operation using it cannot be
// hoisted (or speculated) out of its branch, so no other operation runs on
// the host SSE unit under the guest MXCSR and raises flags it should not.
template<typename T> inline T F(T v)
{
    BARRIER(v);
    return v;
}

// MMi is the low 64 bits of physical x87 register Ri; the x87 registers
// are kept in ST(i) order, so MMi is ST((i - TOP) & 7). enter() makes the
// x87 -> MMX transition (TOP = 0, all tags valid) when the instruction
// completes; set() also sets bits 64-79 of Ri to ones.
class MmxRegs {
public:
    explicit MmxRegs(x86::FxsaveArea& f)
        : m_f(f)
        , m_top((f.fsw >> 11) & 7)
    {
    }

    uint64_t get(unsigned i) const { return m_f.st[(i - m_top) & 7].q[0]; }

    // The x87 -> MMX transition: TOP = 0 (ST(i) becomes Ri), all tags valid.
    void enter()
    {
        if (m_top) {
            x86::Vec128 phys[8];
            for (unsigned i = 0; i < 8; i++)
                phys[i] = m_f.st[(i - m_top) & 7];
            std::memcpy(m_f.st, phys, sizeof phys);
            m_top = 0;
        }
        m_f.fsw &= uint16_t(~0x3800u);
        m_f.ftw = 0xff;
    }
    void set(unsigned i, uint64_t v)
    {
        enter();
        m_f.st[i].q[0] = v;
        m_f.st[i].w[4] = 0xffff;
    }

private:
    x86::FxsaveArea& m_f;
    unsigned m_top;
};

} // namespace kiln::accel::interp::sse

namespace kiln::accel::interp {

// Packed-integer binary operations of the 0F D0-FF / 60-6F range, on 128
// bits; false if `op` is not one of them.
bool sse_int_binop(uint8_t op, __m128i a, __m128i b, __m128i& r);

// The xmm/m128 (or narrower, zero-extended) source operand; `aligned`
// checks a 16-byte memory operand's alignment (#GP).
x86::Vec128 read_xmm_rm(InterpreterImpl& cpu, const DecodedInsn& d, unsigned bytes, bool aligned);
void write_xmm_mem(InterpreterImpl& cpu, const DecodedInsn& d, const x86::Vec128& v, unsigned bytes, bool aligned);

// SSE3 (exec_sse3.cpp): ADDSUB, HADD/HSUB, MOVSLDUP/MOVSHDUP/MOVDDUP,
// LDDQU. Called with SSE enabled; false if `d` is not one of them.
bool exec_sse3(InterpreterImpl& cpu, const DecodedInsn& d);

// SSSE3, SSE4.1 and SSE4.2 (exec_sse4.cpp): the 0F 38 and 0F 3A maps and
// CRC32; false if `d` is not one of them.
bool exec_sse4(InterpreterImpl& cpu, const DecodedInsn& d);

// MMX instructions and the MMX<->XMM conversions (exec_mmx.cpp); false if
// `d` is not one of them.
bool exec_mmx(InterpreterImpl& cpu, const DecodedInsn& d);

} // namespace kiln::accel::interp
