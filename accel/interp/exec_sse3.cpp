// SSE3: ADDSUBPS/PD, HADDPS/PD, HSUBPS/PD, MOVSLDUP, MOVSHDUP, MOVDDUP and
// LDDQU (FISTTP is with the x87 code). The arithmetic runs on the host's
// SSE3 unit under the guest MXCSR, like the SSE2 arithmetic.
#include <pmmintrin.h>

#include "accel/interp/private/sse.h"

namespace kiln::accel::interp {

using namespace x86;
using namespace sse;

namespace {

enum class Op { AddSubPs, AddSubPd, HAddPs, HAddPd, HSubPs, HSubPd };

[[gnu::target("sse3")]] __m128i compute(Op op, __m128i a, __m128i b)
{
    BARRIER(a);
    BARRIER(b);
    switch (op) {
    case Op::AddSubPs:
        return _mm_castps_si128(_mm_addsub_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b)));
    case Op::AddSubPd:
        return _mm_castpd_si128(_mm_addsub_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(b)));
    case Op::HAddPs:
        return _mm_castps_si128(_mm_hadd_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b)));
    case Op::HAddPd:
        return _mm_castpd_si128(_mm_hadd_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(b)));
    case Op::HSubPs:
        return _mm_castps_si128(_mm_hsub_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b)));
    default:
        return _mm_castpd_si128(_mm_hsub_pd(_mm_castsi128_pd(a), _mm_castsi128_pd(b)));
    }
}

} // namespace

bool exec_sse3(InterpreterImpl& cpu, const DecodedInsn& d)
{
    const bool p66 = d.has_66() && !d.rep() && !d.repne();
    const bool f2 = d.repne() && !d.rep();
    const bool f3 = d.rep();
    Vec128* xmm = cpu.state().fpu.xmm;
    switch (d.op) {
    case 0x1d0:
    case 0x17c:
    case 0x17d: {
        if (!p66 && !f2)
            return false;
        Op op;
        if (d.op == 0x1d0)
            op = p66 ? Op::AddSubPd : Op::AddSubPs;
        else if (d.op == 0x17c)
            op = p66 ? Op::HAddPd : Op::HAddPs;
        else
            op = p66 ? Op::HSubPd : Op::HSubPs;
        __m128i a = ld(xmm[d.reg]), b = ld(read_xmm_rm(cpu, d, 16, true));
        __m128i r;
        with_mxcsr(cpu, [&] {
            r = compute(op, a, b);
            BARRIER(r);
        });
        st(xmm[d.reg], r);
        return true;
    }
    case 0x112:
    case 0x116: {
        if (f2 && d.op == 0x112) { // MOVDDUP xmm, xmm/m64
            Vec128 s = read_xmm_rm(cpu, d, 8, false);
            s.q[1] = s.q[0];
            xmm[d.reg] = s;
            return true;
        }
        if (!f3)
            return false;
        // MOVSLDUP (12) / MOVSHDUP (16): duplicate the even / odd dwords.
        Vec128 s = read_xmm_rm(cpu, d, 16, true);
        unsigned odd = d.op == 0x116 ? 1 : 0;
        Vec128 r;
        for (unsigned i = 0; i < 4; i += 2)
            r.d[i] = r.d[i + 1] = s.d[i + odd];
        xmm[d.reg] = r;
        return true;
    }
    case 0x1f0: // LDDQU xmm, m128 (no alignment check)
        if (!f2)
            return false;
        if (d.mod == 3)
            cpu.raise_ud();
        xmm[d.reg] = read_xmm_rm(cpu, d, 16, false);
        return true;
    default:
        return false;
    }
}

} // namespace kiln::accel::interp
