#include "accel/interp/private/lazy_flags.h"

namespace kiln::accel::interp {

using namespace x86;

bool LazyFlags::of(uint64_t rflags) const
{
    unsigned top = m_size * 8 - 1;
    switch (m_op) {
    case FlagOp::None:
        return rflags & k_flag_of;
    case FlagOp::Add:
    case FlagOp::Adc:
        return (((m_a ^ m_res) & (m_b ^ m_res)) >> top) & 1;
    case FlagOp::Sub:
    case FlagOp::Sbb:
        return (((m_a ^ m_b) & (m_a ^ m_res)) >> top) & 1;
    case FlagOp::Logic:
        return false;
    case FlagOp::Inc:
        return (m_res & mask()) == (1ull << top);
    case FlagOp::Dec:
        return (m_res & mask()) == (1ull << top) - 1;
    case FlagOp::Neg:
        return (m_b & mask()) == (1ull << top);
    }
    return false;
}

bool LazyFlags::pf(uint64_t rflags) const
{
    if (m_op == FlagOp::None)
        return rflags & k_flag_pf;
    return parity_even(m_res);
}

uint64_t LazyFlags::compute() const
{
    uint64_t f = 0;
    if (cf(0))
        f |= k_flag_cf;
    if (parity_even(m_res))
        f |= k_flag_pf;
    if (m_op != FlagOp::Logic && (((m_a ^ m_b ^ m_res) >> 4) & 1))
        f |= k_flag_af;
    if ((m_res & mask()) == 0)
        f |= k_flag_zf;
    if ((m_res >> (m_size * 8 - 1)) & 1)
        f |= k_flag_sf;
    if (of(0))
        f |= k_flag_of;
    return f;
}

bool LazyFlags::cond_slow(uint64_t rflags, unsigned cc) const
{
    bool r;
    switch (cc >> 1) {
    case 0:
        r = of(rflags);
        break;
    case 1:
        r = cf(rflags);
        break;
    case 2:
        r = zf(rflags);
        break;
    case 3:
        r = cf(rflags) || zf(rflags);
        break;
    case 4:
        r = sf(rflags);
        break;
    case 5:
        r = pf(rflags);
        break;
    case 6:
        r = sf(rflags) != of(rflags);
        break;
    default:
        r = zf(rflags) || (sf(rflags) != of(rflags));
        break;
    }
    return (cc & 1) ? !r : r;
}

} // namespace kiln::accel::interp
