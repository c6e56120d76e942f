// LazyFlags: arithmetic flags computed on demand. Most instructions that
// set flags are followed by one that overwrites them, so ADD/SUB/logic/
// INC/DEC/NEG only record their operands and result; CF..OF are derived
// when something reads them (Jcc, PUSHF, ADC, an exit from run()).
#pragma once

#include <cstdint>

#include "accel/x86/cpu_state.h"

namespace kiln::accel::interp {

inline bool parity_even(uint64_t v) { return !__builtin_parity(unsigned(v & 0xff)); }

enum class FlagOp : uint8_t { None, Add, Adc, Sub, Sbb, Logic, Inc, Dec, Neg };

class LazyFlags {
public:
    void clear() { m_op = FlagOp::None; }
    bool pending() const { return m_op != FlagOp::None; }

    // Records an operation of `size` bytes: res = a OP b (cf_in for ADC/SBB,
    // the preserved CF for INC/DEC).
    void set(FlagOp op, unsigned size, uint64_t res, uint64_t a, uint64_t b, bool cf_in = false)
    {
        m_op = op;
        m_size = uint8_t(size);
        m_res = res;
        m_a = a;
        m_b = b;
        m_cf_in = cf_in;
    }

    // Full RFLAGS given the stored (non-arithmetic and, if no op is
    // pending, arithmetic) bits.
    [[gnu::always_inline]] uint64_t get(uint64_t rflags) const
    {
        if (m_op == FlagOp::None)
            return rflags;
        if (m_op == FlagOp::Logic || m_op == FlagOp::Add || m_op == FlagOp::Sub) {
            // The common ops inline; CF, OF and AF are clear after logic ops.
            const uint64_t m = mask();
            const unsigned top = m_size * 8 - 1;
            const uint64_t res = m_res & m;
            uint64_t f = parity_even(res) ? x86::k_flag_pf : 0;
            if (res == 0)
                f |= x86::k_flag_zf;
            if ((res >> top) & 1)
                f |= x86::k_flag_sf;
            if (m_op != FlagOp::Logic) {
                const uint64_t a = m_a & m, b = m_b & m;
                bool cf, of;
                if (m_op == FlagOp::Add) {
                    cf = res < a;
                    of = (((a ^ res) & (b ^ res)) >> top) & 1;
                } else {
                    cf = a < b;
                    of = (((a ^ b) & (a ^ res)) >> top) & 1;
                }
                if (cf)
                    f |= x86::k_flag_cf;
                if (of)
                    f |= x86::k_flag_of;
                if ((a ^ b ^ res) & 0x10)
                    f |= x86::k_flag_af;
            }
            return (rflags & ~x86::k_flags_arith) | f;
        }
        return (rflags & ~x86::k_flags_arith) | compute();
    }
    // Folds a pending op into rflags and replaces the arithmetic bits in `mask` with `arith`.
    void set_eager(uint64_t& rflags, uint64_t arith, uint64_t mask = x86::k_flags_arith)
    {
        // When every arithmetic flag is replaced the pending op's values do
        // not matter: skip computing them.
        if (mask == x86::k_flags_arith)
            rflags = (rflags & ~mask) | (arith & mask);
        else
            rflags = (get(rflags) & ~mask) | (arith & mask);
        m_op = FlagOp::None;
    }
    void materialize(uint64_t& rflags)
    {
        rflags = get(rflags);
        m_op = FlagOp::None;
    }

    // Inline: INC/DEC and ADC/SBB read CF on every execution.
    bool cf(uint64_t rflags) const
    {
        uint64_t m = mask();
        uint64_t a = m_a & m, b = m_b & m, r = m_res & m;
        switch (m_op) {
        case FlagOp::None:
            return rflags & x86::k_flag_cf;
        case FlagOp::Add:
            return r < a;
        case FlagOp::Adc:
            return m_cf_in ? r <= a : r < a;
        case FlagOp::Sub:
            return a < b;
        case FlagOp::Sbb:
            return m_cf_in ? a <= b : a < b;
        case FlagOp::Logic:
            return false;
        case FlagOp::Inc:
        case FlagOp::Dec:
            return m_cf_in;
        case FlagOp::Neg:
            return b != 0;
        }
        return false;
    }
    bool zf(uint64_t rflags) const
    {
        if (m_op == FlagOp::None)
            return rflags & x86::k_flag_zf;
        return (m_res & mask()) == 0;
    }
    bool sf(uint64_t rflags) const
    {
        if (m_op == FlagOp::None)
            return rflags & x86::k_flag_sf;
        return (m_res >> (m_size * 8 - 1)) & 1;
    }
    bool of(uint64_t rflags) const;
    bool pf(uint64_t rflags) const;
    // Condition code cc (0-15) as Jcc/SETcc/CMOVcc encode it. After CMP/SUB
    // and logic ops (most conditions) it compares the recorded operands
    // directly instead of deriving individual flags.
    [[gnu::always_inline]] bool cond(uint64_t rflags, unsigned cc) const
    {
        bool r;
        if (m_op == FlagOp::Sub) {
            const uint64_t m = mask();
            const uint64_t a = m_a & m, b = m_b & m;
            const unsigned sh = 64 - m_size * 8;
            switch (cc >> 1) {
            case 1: // B: CF
                r = a < b;
                break;
            case 2: // E: ZF
                r = a == b;
                break;
            case 3: // BE: CF or ZF
                r = a <= b;
                break;
            case 6: // L: SF != OF, a signed less-than
                r = int64_t(a << sh) < int64_t(b << sh);
                break;
            case 7: // LE: ZF or SF != OF
                r = int64_t(a << sh) <= int64_t(b << sh);
                break;
            default:
                return cond_slow(rflags, cc);
            }
            return (cc & 1) ? !r : r;
        }
        if (m_op == FlagOp::Logic) {
            const uint64_t res = m_res & mask();
            const bool sf = (res >> (m_size * 8 - 1)) & 1;
            switch (cc >> 1) {
            case 0: // O, and B: CF and OF are clear
            case 1:
                r = false;
                break;
            case 2: // E
            case 3: // BE
                r = res == 0;
                break;
            case 4: // S
            case 6: // L: SF != OF(0)
                r = sf;
                break;
            case 7: // LE
                r = res == 0 || sf;
                break;
            default:
                return cond_slow(rflags, cc);
            }
            return (cc & 1) ? !r : r;
        }
        return cond_slow(rflags, cc);
    }
    bool cond_slow(uint64_t rflags, unsigned cc) const;

private:
    uint64_t compute() const;
    uint64_t mask() const { return m_size == 8 ? ~0ull : (1ull << (m_size * 8)) - 1; }

    FlagOp m_op = FlagOp::None;
    uint8_t m_size = 1;
    bool m_cf_in = false;
    uint64_t m_res = 0, m_a = 0, m_b = 0;
};

} // namespace kiln::accel::interp
