// x87 floating point. Values are kept in the FXSAVE image (ST(i) order)
// and computed with the host's 80-bit long double under the guest's
// control word, so precision and rounding follow the guest exactly; the
// exception flags the host raises are merged into the guest status word.
#include <cmath>
#include <cstring>
#include <exception>

#include "accel/interp/private/cpu.h"
#include "accel/interp/private/x87.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

constexpr uint16_t k_fsw_ie = 1u << 0;
constexpr uint16_t k_fsw_sf = 1u << 6;
constexpr uint16_t k_fsw_es = 1u << 7;
constexpr uint16_t k_fsw_c0 = 1u << 8;
constexpr uint16_t k_fsw_c1 = 1u << 9;
constexpr uint16_t k_fsw_c2 = 1u << 10;
constexpr uint16_t k_fsw_c3 = 1u << 14;
constexpr uint16_t k_fsw_b = 1u << 15;

// The last non-control x87 instruction's pointers (FIP, FOP, and FDP for a
// memory operand), recorded when the instruction completes; a fault
// (#PF on its operand) leaves the previous ones. Control instructions
// (FNINIT, FNCLEX, FLDCW, FNSTCW, FNSTSW, FNSTENV, FLDENV, FNSAVE, FRSTOR)
// keep them. FCS/FDS are not tracked (saved as 0).
class X87Pointers {
public:
    X87Pointers(InterpreterImpl& cpu, const DecodedInsn& d, bool control)
        : m_cpu(cpu)
        , m_d(d)
        , m_record(!control)
        , m_exceptions(std::uncaught_exceptions())
    {
    }
    ~X87Pointers()
    {
        if (!m_record || std::uncaught_exceptions() != m_exceptions)
            return;
        FxsaveArea& f = m_cpu.state().fpu;
        f.fip = m_cpu.state().rip;
        f.fop = uint16_t(((m_d.op & 7) << 8) | m_d.modrm);
        if (m_d.mod != 3)
            f.fdp = m_cpu.effective_address(m_d);
    }
    X87Pointers(const X87Pointers&) = delete;
    X87Pointers& operator=(const X87Pointers&) = delete;

private:
    InterpreterImpl& m_cpu;
    const DecodedInsn& m_d;
    bool m_record;
    int m_exceptions;
};

class X87 {
public:
    X87(InterpreterImpl& cpu)
        : m_cpu(cpu)
        , m_f(cpu.state().fpu)
    {
    }

    unsigned top() const { return (m_f.fsw >> 11) & 7; }
    void set_top(unsigned t) { m_f.fsw = uint16_t((m_f.fsw & ~0x3800u) | ((t & 7) << 11)); }
    bool valid(unsigned i) const { return m_f.ftw & (1u << ((top() + i) & 7)); }
    void set_valid(unsigned i, bool v)
    {
        unsigned bit = 1u << ((top() + i) & 7);
        m_f.ftw = uint8_t(v ? (m_f.ftw | bit) : (m_f.ftw & ~bit));
    }

    long double get(unsigned i)
    {
        if (!valid(i)) {
            stack_fault(false);
            m_underflow = true;
            return indefinite();
        }
        long double v;
        std::memcpy(&v, &m_f.st[i], 10);
        return v;
    }
    void set(unsigned i, long double v)
    {
        Vec128 slot {};
        std::memcpy(&slot, &v, 10);
        m_f.st[i] = slot;
        set_valid(i, true);
    }
    void push(long double v)
    {
        if (valid(7)) {
            // Masked stack overflow loads the indefinite QNaN.
            stack_fault(true);
            if (m_f.fcw & 1)
                v = indefinite();
        } else {
            m_f.fsw &= uint16_t(~k_fsw_c1);
        }
        rotate(-1);
        set(0, v);
    }
    void pop()
    {
        set_valid(0, false);
        rotate(1);
    }
    // TOP += delta: ST(i) names shift, physical registers (and tags) stay.
    void rotate(int delta)
    {
        Vec128 old[8];
        std::memcpy(old, m_f.st, sizeof old);
        for (int i = 0; i < 8; i++)
            m_f.st[i] = old[(i + delta) & 7];
        set_top(unsigned(int(top()) + delta));
    }

    // Runs host x87 arithmetic under the guest control word (exceptions
    // masked) and merges the flags raised.
    template<typename Fn> void guarded(Fn fn)
    {
        uint16_t host_cw;
        asm volatile("fnstcw %0" : "=m"(host_cw));
        uint16_t cw = uint16_t(m_f.fcw | 0x3f);
        asm volatile("fnclex\n\tfldcw %0" ::"m"(cw) : "memory");
        fn();
        uint16_t sw;
        asm volatile("fnstsw %0" : "=m"(sw)::"memory");
        asm volatile("fnclex\n\tfldcw %0" ::"m"(host_cw) : "memory");
        uint16_t flags = sw & 0x3f;
        m_f.fsw |= flags;
        m_f.fsw = uint16_t((m_f.fsw & ~k_fsw_c1) | (sw & k_fsw_c1)); // C1: rounded up
        if (flags & ~m_f.fcw & 0x3f)
            m_f.fsw |= k_fsw_es | k_fsw_b;
    }

    void stack_fault(bool overflow)
    {
        m_f.fsw |= k_fsw_ie | k_fsw_sf;
        m_f.fsw = uint16_t(overflow ? (m_f.fsw | k_fsw_c1) : (m_f.fsw & ~k_fsw_c1));
        if (!(m_f.fcw & 1))
            m_f.fsw |= k_fsw_es | k_fsw_b;
    }
    static long double indefinite() { return -std::numeric_limits<long double>::quiet_NaN(); }

    void set_cc(bool c0, bool c2, bool c3)
    {
        m_f.fsw = uint16_t(m_f.fsw & ~(k_fsw_c0 | k_fsw_c1 | k_fsw_c2 | k_fsw_c3));
        if (c0)
            m_f.fsw |= k_fsw_c0;
        if (c2)
            m_f.fsw |= k_fsw_c2;
        if (c3)
            m_f.fsw |= k_fsw_c3;
    }

    FxsaveArea& f() { return m_f; }
    // C1 of the status word captured right after the host operation.
    void take_c1(uint16_t sw) { m_f.fsw = uint16_t((m_f.fsw & ~k_fsw_c1) | (sw & k_fsw_c1)); }

    // An operand register was empty: the masked response is the indefinite.
    bool underflow() const { return m_underflow; }

private:
    InterpreterImpl& m_cpu;
    FxsaveArea& m_f;
    bool m_underflow = false;
};

// One x87 arithmetic instruction on the host FPU (result stays in a
// register, so the host's C1 "rounded up" bit describes this operation).
long double arith(unsigned op, long double a, long double b, uint16_t& sw)
{
    long double r;
    switch (op & 7) {
    case 0:
        asm volatile("fadd %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 1:
        asm volatile("fmul %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 4:
        asm volatile("fsub %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 5:
        asm volatile("fsubr %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 6:
        asm volatile("fdiv %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 7:
        asm volatile("fdivr %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    default:
        r = a;
        sw = 0;
        break; // 2/3: compares, handled by the caller
    }
    return r;
}

} // namespace

bool InterpreterImpl::exec_x87(const DecodedInsn& d)
{
    const unsigned op = d.op;
    if (op == 0x9b) { // FWAIT
        if ((m_s.cr0 & (k_cr0_mp | k_cr0_ts)) == (k_cr0_mp | k_cr0_ts))
            raise(k_nm);
        x87_check_pending(*this);
        return true;
    }
    if (op < 0xd8 || op > 0xdf)
        return false;
    if (m_s.cr0 & (k_cr0_em | k_cr0_ts))
        raise(k_nm);
    // Every x87 instruction but the no-wait control forms (FNINIT, FNCLEX,
    // FNSTSW, FNSTCW, FNSTENV, FNSAVE) first reports a pending exception.
    {
        const unsigned rr = d.reg & 7;
        const bool no_wait = (op == 0xdb && (d.modrm == 0xe2 || d.modrm == 0xe3)) || (op == 0xdf && d.modrm == 0xe0)
            || (d.mod != 3 && ((op == 0xd9 && (rr == 6 || rr == 7)) || (op == 0xdd && (rr == 6 || rr == 7))));
        if (!no_wait)
            x87_check_pending(*this);
    }
    const unsigned rr = d.reg & 7;
    const bool control = (op == 0xdb && (d.modrm == 0xe2 || d.modrm == 0xe3)) || (op == 0xdf && d.modrm == 0xe0)
        || (d.mod != 3 && ((op == 0xd9 && rr >= 4) || (op == 0xdd && (rr == 4 || rr == 6 || rr == 7))));
    X87Pointers pointers(*this, d, control);
    X87 x(*this);
    FxsaveArea& f = x.f();
    const unsigned r = d.reg & 7;
    const unsigned i = d.rm & 7;
    const uint8_t b = uint8_t(op);
    Seg seg = operand_seg(d);
    uint64_t ea = d.mod != 3 ? effective_address(d) : 0;
    // Compares on the host FPU so IE follows the guest instruction
    // (FCOM/FCOMI signal on any NaN, FUCOM/FUCOMI only on SNaN).
    auto host_compare = [&](long double a, long double c, bool quiet) {
        x.guarded([&] {
            if (quiet)
                asm volatile("fucomip %%st(1), %%st\n\tfstp %%st(0)" ::"t"(a), "u"(c) : "cc", "st", "st(1)");
            else
                asm volatile("fcomip %%st(1), %%st\n\tfstp %%st(0)" ::"t"(a), "u"(c) : "cc", "st", "st(1)");
        });
        f.fsw &= uint16_t(~k_fsw_c1);
    };
    auto compare = [&](long double a, long double c, bool quiet) {
        host_compare(a, c, quiet);
        bool un = std::isnan(a) || std::isnan(c);
        x.set_cc(un || a < c, un, un || a == c);
    };
    auto compare_eflags = [&](long double a, long double c, bool quiet) {
        host_compare(a, c, quiet);
        bool un = std::isnan(a) || std::isnan(c);
        uint64_t fl = un ? (k_flag_zf | k_flag_pf | k_flag_cf) : a < c ? k_flag_cf : a == c ? k_flag_zf : 0;
        set_arith_flags(fl);
    };

    // FISTTP m16/m32/m64 (SSE3): truncating store on the host, then pop.
    auto fisttp = [&](unsigned bytes) {
        long double a = x.get(0);
        uint64_t v = 0;
        x.guarded([&] {
            volatile long double va = a;
            if (bytes == 2) {
                int16_t out;
                asm volatile("fisttps %0" : "=m"(out) : "t"(va) : "st");
                v = uint16_t(out);
            } else if (bytes == 4) {
                int32_t out;
                asm volatile("fisttpl %0" : "=m"(out) : "t"(va) : "st");
                v = uint32_t(out);
            } else {
                int64_t out;
                asm volatile("fisttpll %0" : "=m"(out) : "t"(va) : "st");
                v = uint64_t(out);
            }
        });
        write_mem(seg, ea, bytes, v);
        x.pop();
    };

    if (d.mod != 3) {
        switch (b) {
        case 0xd8:
        case 0xdc:
        case 0xda:
        case 0xde: { // arithmetic with a memory operand
            // The operand is converted without flags; a denormal source
            // raises DE only when the operation itself raises neither IE
            // nor ZE and the other operand is finite (the hardware's
            // priority, as observed against the oracle).
            uint64_t raw = read_mem(seg, ea, b == 0xd8 || b == 0xda ? 4 : b == 0xdc ? 8 : 2);
            long double m;
            bool denormal = false;
            if (b == 0xd8) {
                float fv;
                uint32_t v = uint32_t(raw);
                std::memcpy(&fv, &v, 4);
                denormal = std::fpclassify(fv) == FP_SUBNORMAL;
                m = fv;
            } else if (b == 0xdc) {
                double dv;
                std::memcpy(&dv, &raw, 8);
                denormal = std::fpclassify(dv) == FP_SUBNORMAL;
                m = dv;
            } else {
                m = b == 0xda ? (long double)int32_t(raw) : (long double)int16_t(raw);
            }
            long double a = x.get(0);
            uint16_t before = f.fsw;
            f.fsw &= uint16_t(~0x3fu);
            if (r == 2 || r == 3) {
                compare(a, m, false);
                if (r == 3)
                    x.pop();
            } else {
                long double res;
                uint16_t sw = 0;
                if (x.underflow())
                    res = X87::indefinite();
                else
                    x.guarded([&] { res = arith(r, a, m, sw); });
                x.take_c1(sw);
                x.set(0, res);
            }
            if (denormal && !(f.fsw & 0x05) && !std::isnan(a))
                f.fsw |= 0x02;
            f.fsw |= before & 0x3f;
            return true;
        }
        case 0xd9:
            switch (r) {
            case 0: { // FLD m32
                if (x.valid(7)) { // overflow: nothing is loaded, no DE
                    x.push(0);
                    return true;
                }
                uint32_t v = uint32_t(read_mem(seg, ea, 4));
                float fv;
                std::memcpy(&fv, &v, 4);
                long double ld;
                x.guarded([&] { asm volatile("flds %1" : "=t"(ld) : "m"(fv)); });
                x.push(ld);
                return true;
            }
            case 2:
            case 3: { // FST(P) m32
                long double a = x.get(0);
                float fv;
                uint16_t sw = 0;
                x.guarded([&] { asm volatile("fsts %0\n\tfnstsw %1" : "=m"(fv), "=m"(sw) : "t"(a)); });
                x.take_c1(sw);
                uint32_t v;
                std::memcpy(&v, &fv, 4);
                write_mem(seg, ea, 4, v);
                if (r == 3)
                    x.pop();
                return true;
            }
            case 4: // FLDENV
                x87_load_env(*this, seg, ea, d.opsize);
                return true;
            case 6: // FNSTENV: then all exceptions masked
                x87_store_env(*this, seg, ea, d.opsize);
                f.fcw |= 0x3f;
                return true;
            case 5: // FLDCW
                f.fcw = x87_control_word(uint16_t(read_mem(seg, ea, 2)));
                return true;
            case 7: // FNSTCW
                write_mem(seg, ea, 2, f.fcw);
                return true;
            default:
                raise_ud();
            }
        case 0xdd:
            switch (r) {
            case 0: { // FLD m64
                if (x.valid(7)) {
                    x.push(0);
                    return true;
                }
                uint64_t v = read_mem(seg, ea, 8);
                double dv;
                std::memcpy(&dv, &v, 8);
                long double ld;
                x.guarded([&] { asm volatile("fldl %1" : "=t"(ld) : "m"(dv)); });
                x.push(ld);
                return true;
            }
            case 2:
            case 3: { // FST(P) m64
                long double a = x.get(0);
                double dv;
                uint16_t sw = 0;
                x.guarded([&] { asm volatile("fstl %0\n\tfnstsw %1" : "=m"(dv), "=m"(sw) : "t"(a)); });
                x.take_c1(sw);
                uint64_t v;
                std::memcpy(&v, &dv, 8);
                write_mem(seg, ea, 8, v);
                if (r == 3)
                    x.pop();
                return true;
            }
            case 7: // FNSTSW m16
                write_mem(seg, ea, 2, f.fsw);
                return true;
            case 1:
                fisttp(8);
                return true;
            case 4: // FRSTOR
                x87_frstor(*this, seg, ea, d.opsize);
                return true;
            case 6: // FNSAVE
                x87_fnsave(*this, seg, ea, d.opsize);
                return true;
            default:
                raise_ud();
            }
        case 0xdb:
            switch (r) {
            case 0: // FILD m32
                x.push(int32_t(read_mem(seg, ea, 4)));
                return true;
            case 1:
                fisttp(4);
                return true;
            case 2:
            case 3: { // FIST(P) m32
                long double a = x.get(0);
                int32_t v = 0;
                x.guarded([&] {
                    volatile long double va = a;
                    int32_t out;
                    asm volatile("fistpl %0" : "=m"(out) : "t"(va) : "st");
                    v = out;
                });
                write_mem(seg, ea, 4, uint32_t(v));
                if (r == 3)
                    x.pop();
                return true;
            }
            case 5: { // FLD m80
                uint8_t raw[10];
                uint64_t lo = read_mem(seg, ea, 8);
                uint64_t hi = read_mem(seg, ea + 8, 2);
                std::memcpy(raw, &lo, 8);
                std::memcpy(raw + 8, &hi, 2);
                long double v = 0;
                std::memcpy(&v, raw, 10);
                x.push(v);
                return true;
            }
            case 7: { // FSTP m80
                long double a = x.get(0);
                uint8_t raw[16] = {};
                std::memcpy(raw, &a, 10);
                uint64_t lo, hi = 0;
                std::memcpy(&lo, raw, 8);
                std::memcpy(&hi, raw + 8, 2);
                linear(seg, ea, 10, Access::Write);
                write_mem(seg, ea, 8, lo);
                write_mem(seg, ea + 8, 2, hi);
                x.pop();
                return true;
            }
            default:
                raise_ud();
            }
        case 0xdf:
            switch (r) {
            case 0: // FILD m16
                x.push(int16_t(read_mem(seg, ea, 2)));
                return true;
            case 1:
                fisttp(2);
                return true;
            case 5: // FILD m64
                x.push(int64_t(read_mem(seg, ea, 8)));
                return true;
            case 4: { // FBLD m80: packed BCD, converted on the host (exact)
                uint8_t bcd[10];
                uint64_t lo = read_mem(seg, ea, 8), hi = read_mem(seg, ea + 8, 2);
                std::memcpy(bcd, &lo, 8);
                std::memcpy(bcd + 8, &hi, 2);
                if (x.valid(7)) {
                    x.push(0);
                    return true;
                }
                long double v = 0;
                x.guarded([&] { asm volatile("fbld %1" : "=t"(v) : "m"(bcd)); });
                x.push(v);
                return true;
            }
            case 6: { // FBSTP m80: round per RC, store packed BCD, pop
                long double a = x.get(0);
                uint8_t bcd[10];
                x.guarded([&] {
                    volatile long double va = a;
                    asm volatile("fbstp %0" : "=m"(bcd) : "t"(va) : "st");
                });
                uint64_t lo, hi = 0;
                std::memcpy(&lo, bcd, 8);
                std::memcpy(&hi, bcd + 8, 2);
                linear(seg, ea, 10, Access::Write);
                write_mem(seg, ea, 8, lo);
                write_mem(seg, ea + 8, 2, hi);
                x.pop();
                return true;
            }
            case 2:
            case 3:
            case 7: { // FIST(P) m16, FISTP m64
                long double a = x.get(0);
                int64_t v = 0;
                x.guarded([&] {
                    volatile long double va = a;
                    if (r == 7) {
                        int64_t out;
                        asm volatile("fistpll %0" : "=m"(out) : "t"(va) : "st");
                        v = out;
                    } else {
                        int16_t out;
                        asm volatile("fistps %0" : "=m"(out) : "t"(va) : "st");
                        v = out;
                    }
                });
                write_mem(seg, ea, r == 7 ? 8 : 2, uint64_t(v));
                if (r != 2)
                    x.pop();
                return true;
            }
            default:
                raise_ud();
            }
        default:
            raise_ud();
        }
    }

    // Register forms.
    switch (b) {
    case 0xd8:
    case 0xdc:
    case 0xde: {
        long double a = x.get(0), c = x.get(i);
        if (b == 0xde && r == 3) { // FCOMPP is DE D9
            if (i != 1)
                raise_ud();
            compare(a, c, false);
            x.pop();
            x.pop();
            return true;
        }
        if (r == 2 || r == 3) {
            compare(a, c, false);
            if (r == 3)
                x.pop();
            return true;
        }
        long double res;
        uint16_t sw = 0;
        if (b == 0xd8) {
            if (x.underflow())
                res = X87::indefinite();
            else
                x.guarded([&] { res = arith(r, a, c, sw); });
            x.take_c1(sw);
            x.set(0, res);
        } else {
            // DC/DE: ST(i) = ST(i) op ST(0), with the SUB/SUBR and DIV/DIVR encodings swapped.
            unsigned rr = (r >= 4) ? (r ^ 1) : r;
            if (x.underflow())
                res = X87::indefinite();
            else
                x.guarded([&] { res = arith(rr, c, a, sw); });
            x.take_c1(sw);
            x.set(i, res);
            if (b == 0xde)
                x.pop();
        }
        return true;
    }
    case 0xd9:
        if (r == 0) { // FLD ST(i)
            if (!x.valid(i)) { // underflow: push the indefinite, no overflow check
                x.stack_fault(false);
                x.rotate(-1);
                x.set(0, X87::indefinite());
                return true;
            }
            long double v = x.get(i);
            x.push(v);
            return true;
        }
        if (r == 1) { // FXCH
            long double a = x.get(0), c = x.get(i);
            x.set(0, c);
            x.set(i, a);
            f.fsw &= uint16_t(~k_fsw_c1);
            return true;
        }
        switch (d.modrm) {
        case 0xd0:
            return true; // FNOP
        case 0xe0:
            x.set(0, -x.get(0));
            f.fsw &= uint16_t(~k_fsw_c1);
            return true;
        case 0xe1:
            x.set(0, std::fabs(x.get(0)));
            f.fsw &= uint16_t(~k_fsw_c1);
            return true;
        case 0xe4:
            compare(x.get(0), 0.0L, false);
            return true; // FTST
        case 0xe5: { // FXAM
            bool empty = !x.valid(0);
            long double v = 0;
            if (!empty)
                v = x.get(0);
            bool c0 = false, c2 = false, c3 = false;
            if (empty) {
                c0 = c3 = true;
            } else if (std::isnan(v)) {
                c0 = true;
            } else if (std::isinf(v)) {
                c0 = c2 = true;
            } else if (v == 0) {
                c3 = true;
            } else if (std::fpclassify(v) == FP_SUBNORMAL) {
                c2 = c3 = true;
            } else {
                c2 = true;
            }
            x.set_cc(c0, c2, c3);
            if (std::signbit(v))
                f.fsw |= k_fsw_c1;
            return true;
        }
        case 0xe8:
            x.push(1.0L);
            return true;
        case 0xe9:
        case 0xea:
        case 0xeb:
        case 0xec:
        case 0xed: { // the constants are rounded per RC: load them on the host
            long double v = 0;
            x.guarded([&] {
                switch (d.modrm) {
                case 0xe9:
                    asm volatile("fldl2t" : "=t"(v));
                    break;
                case 0xea:
                    asm volatile("fldl2e" : "=t"(v));
                    break;
                case 0xeb:
                    asm volatile("fldpi" : "=t"(v));
                    break;
                case 0xec:
                    asm volatile("fldlg2" : "=t"(v));
                    break;
                default:
                    asm volatile("fldln2" : "=t"(v));
                    break;
                }
            });
            x.push(v);
            return true;
        }
        case 0xee:
            x.push(0.0L);
            return true;
        case 0xf6:
            x.rotate(-1);
            return true; // FDECSTP
        case 0xf7:
            x.rotate(1);
            return true; // FINCSTP
        case 0xfa: { // FSQRT
            long double v = x.get(0), res;
            uint16_t sw = 0;
            x.guarded([&] { asm volatile("fsqrt\n\tfnstsw %1" : "=t"(res), "=m"(sw) : "0"(v)); });
            x.take_c1(sw);
            x.set(0, res);
            return true;
        }
        case 0xfc: { // FRNDINT
            long double v = x.get(0), res;
            uint16_t sw = 0;
            x.guarded([&] { asm volatile("frndint\n\tfnstsw %1" : "=t"(res), "=m"(sw) : "0"(v)); });
            x.take_c1(sw);
            x.set(0, res);
            return true;
        }
        case 0xf8: // FPREM
        case 0xf5: { // FPREM1
            long double a = x.get(0), c = x.get(1), res;
            uint16_t sw = 0;
            x.guarded([&] {
                if (d.modrm == 0xf8)
                    asm volatile("fprem\n\tfnstsw %1" : "=t"(res), "=m"(sw) : "0"(a), "u"(c));
                else
                    asm volatile("fprem1\n\tfnstsw %1" : "=t"(res), "=m"(sw) : "0"(a), "u"(c));
            });
            x.set(0, res);
            // C2 (incomplete) and the quotient bits in C0/C3/C1 come from the host.
            f.fsw = uint16_t((f.fsw & ~(k_fsw_c0 | k_fsw_c1 | k_fsw_c2 | k_fsw_c3))
                | (sw & (k_fsw_c0 | k_fsw_c1 | k_fsw_c2 | k_fsw_c3)));
            return true;
        }
        case 0xfd: { // FSCALE
            long double a = x.get(0), c = x.get(1), res;
            uint16_t sw = 0;
            x.guarded([&] { asm volatile("fscale\n\tfnstsw %1" : "=t"(res), "=m"(sw) : "0"(a), "u"(c)); });
            x.take_c1(sw);
            x.set(0, res);
            return true;
        }
        default:
            if (x87_host_instruction(f, d.modrm))
                return true;
            raise_ud();
        }
    case 0xdd:
        if (r == 0) { // FFREE
            x.set_valid(i, false);
            return true;
        }
        if (r == 2 || r == 3) { // FST(P) ST(i)
            x.set(i, x.get(0));
            f.fsw &= uint16_t(~k_fsw_c1);
            if (r == 3)
                x.pop();
            return true;
        }
        if (r == 4 || r == 5) { // FUCOM(P)
            compare(x.get(0), x.get(i), true);
            if (r == 5)
                x.pop();
            return true;
        }
        raise_ud();
    case 0xda:
        if (d.modrm == 0xe9) { // FUCOMPP
            compare(x.get(0), x.get(1), true);
            x.pop();
            x.pop();
            return true;
        }
        [[fallthrough]];
    case 0xdb:
        if (b == 0xdb && d.modrm == 0xe2) { // FNCLEX
            f.fsw &= 0x7f00;
            return true;
        }
        if (b == 0xdb && d.modrm == 0xe3) { // FNINIT
            x87_init(f);
            return true;
        }
        if (b == 0xdb && (r == 5 || r == 6)) { // FUCOMI / FCOMI
            compare_eflags(x.get(0), x.get(i), r == 5);
            return true;
        }
        if (r <= 3) { // FCMOVcc
            bool c;
            switch (r) {
            case 0:
                c = cond(2);
                break; // B
            case 1:
                c = cond(4);
                break; // E
            case 2:
                c = cond(6);
                break; // BE
            default:
                c = cond(10);
                break; // U (PF)
            }
            if (b == 0xdb)
                c = !c;
            long double src = x.get(i);
            x.get(0);
            if (x.underflow())
                x.set(0, X87::indefinite());
            else if (c)
                x.set(0, src);
            return true;
        }
        raise_ud();
    case 0xdf:
        if (d.modrm == 0xe0) { // FNSTSW AX
            set_reg(k_rax, 2, f.fsw);
            return true;
        }
        if (r == 5 || r == 6) { // FUCOMIP / FCOMIP
            compare_eflags(x.get(0), x.get(i), r == 5);
            x.pop();
            return true;
        }
        raise_ud();
    default:
        raise_ud();
    }
}

} // namespace kiln::accel::interp
