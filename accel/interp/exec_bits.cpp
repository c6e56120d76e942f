// Shifts and rotates (incl. RCL/RCR, SHLD/SHRD), bit tests, bit scans,
// POPCNT. Their flags are computed eagerly: the rules differ per count.
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

uint64_t szp_flags(uint64_t r, unsigned size)
{
    uint64_t f = 0;
    if ((r & size_mask(size)) == 0)
        f |= k_flag_zf;
    if ((r >> (size * 8 - 1)) & 1)
        f |= k_flag_sf;
    if (parity_even(r))
        f |= k_flag_pf;
    return f;
}

} // namespace

// Shift/rotate `op` (ROL ROR RCL RCR SHL SHR SAL SAR) of v by count.
// Returns the result; updates flags unless the masked count is zero.
static uint64_t shift_op(InterpreterImpl& cpu, unsigned op, unsigned size, uint64_t v, unsigned count)
{
    const unsigned bits = size * 8;
    const uint64_t m = size_mask(size);
    count &= size == 8 ? 0x3f : 0x1f;
    if (count == 0)
        return v;
    CpuState& s = cpu.state();
    uint64_t old = cpu.flags();
    bool cf = old & k_flag_cf;
    uint64_t r;
    uint64_t f = old & k_flags_arith;
    auto msb = [&](uint64_t x) { return (x >> (bits - 1)) & 1; };
    auto set = [&](uint64_t flag, bool on) { f = on ? (f | flag) : (f & ~flag); };
    switch (op) {
    case 0: { // ROL
        unsigned c = count % bits;
        r = c ? ((v << c) | (v >> (bits - c))) & m : v;
        set(k_flag_cf, r & 1);
        set(k_flag_of, msb(r) ^ (r & 1));
        break;
    }
    case 1: { // ROR
        unsigned c = count % bits;
        r = c ? ((v >> c) | (v << (bits - c))) & m : v;
        set(k_flag_cf, msb(r));
        set(k_flag_of, msb(r) ^ ((r >> (bits - 2)) & 1));
        break;
    }
    case 2: { // RCL: rotate through CF over bits+1 positions
        unsigned c = size <= 2 ? count % (bits + 1) : count;
        r = v;
        for (unsigned i = 0; i < c; i++) {
            bool out = msb(r);
            r = ((r << 1) | cf) & m;
            cf = out;
        }
        set(k_flag_cf, cf);
        set(k_flag_of, msb(r) ^ cf);
        break;
    }
    case 3: { // RCR
        unsigned c = size <= 2 ? count % (bits + 1) : count;
        r = v;
        bool of = msb(v) ^ cf;
        for (unsigned i = 0; i < c; i++) {
            bool out = r & 1;
            r = (r >> 1) | (uint64_t(cf) << (bits - 1));
            cf = out;
        }
        set(k_flag_cf, cf);
        set(k_flag_of, of);
        break;
    }
    case 4:
    case 6: { // SHL/SAL
        r = count < bits ? (v << count) & m : 0;
        bool c = count <= bits ? (v >> (bits - count)) & 1 : false;
        f = szp_flags(r, size);
        set(k_flag_cf, c);
        set(k_flag_of, msb(r) ^ c);
        break;
    }
    case 5: { // SHR
        r = count < bits ? v >> count : 0;
        bool c = count <= bits ? (v >> (count - 1)) & 1 : false;
        f = szp_flags(r, size);
        set(k_flag_cf, c);
        set(k_flag_of, msb(v));
        break;
    }
    default: { // SAR
        int64_t sv = int64_t(v << (64 - bits)) >> (64 - bits);
        unsigned c = count < bits ? count : bits - 1;
        r = uint64_t(sv >> c) & m;
        bool out = count < bits ? (sv >> (count - 1)) & 1 : sv < 0;
        f = szp_flags(r, size);
        set(k_flag_cf, out);
        break;
    }
    }
    (void)s;
    cpu.set_arith_flags(f);
    return r;
}

static uint64_t double_shift(
    InterpreterImpl& cpu, bool right, unsigned size, uint64_t dst, uint64_t src, unsigned count)
{
    const unsigned bits = size * 8;
    const uint64_t m = size_mask(size);
    count &= size == 8 ? 0x3f : 0x1f;
    if (count == 0)
        return dst;
    uint64_t r;
    bool cf;
    if (size == 2) {
        // 16-bit with counts above 16: the SDM leaves the result undefined;
        // treat it as a 48-bit shift through dst:src:dst as Intel cores do.
        uint64_t wide = right ? (dst | (src << 16) | (dst << 32)) : ((dst << 32) | (src << 16) | dst);
        if (right) {
            r = (wide >> count) & m;
            cf = (wide >> (count - 1)) & 1;
        } else {
            r = (wide >> (32 - count)) & m;
            cf = (wide >> (48 - count)) & 1;
        }
    } else if (right) {
        r = ((dst >> count) | (src << (bits - count))) & m;
        cf = (dst >> (count - 1)) & 1;
    } else {
        r = ((dst << count) | (src >> (bits - count))) & m;
        cf = (dst >> (bits - count)) & 1;
    }
    uint64_t f = szp_flags(r, size);
    if (cf)
        f |= k_flag_cf;
    if (((r ^ dst) >> (bits - 1)) & 1)
        f |= k_flag_of;
    cpu.set_arith_flags(f);
    return r;
}

bool InterpreterImpl::exec_bits(const DecodedInsn& d)
{
    const unsigned op = d.op;
    const unsigned size = d.opsize;
    switch (op) {
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        unsigned sz = (op & 1) ? size : 1;
        unsigned count = op <= 0xc1 ? unsigned(d.imm) : op <= 0xd1 ? 1 : unsigned(m_s.gpr[k_rcx] & 0xff);
        uint64_t v = read_rm(d, sz);
        uint64_t r = shift_op(*this, d.reg & 7, sz, v, count);
        write_rm(d, sz, r);
        return true;
    }
    case 0x1a4:
    case 0x1a5:
    case 0x1ac:
    case 0x1ad: {
        unsigned count = (op & 1) ? unsigned(m_s.gpr[k_rcx] & 0xff) : unsigned(d.imm);
        uint64_t v = read_rm(d, size);
        uint64_t r = double_shift(*this, op >= 0x1ac, size, v, reg(d.reg, size), count);
        write_rm(d, size, r);
        return true;
    }
    case 0x1a3:
    case 0x1ab:
    case 0x1b3:
    case 0x1bb:
    case 0x1ba: {
        const unsigned bits = size * 8;
        unsigned kind; // 0 BT, 1 BTS, 2 BTR, 3 BTC
        uint64_t bit;
        uint64_t offset_bytes = 0;
        if (op == 0x1ba) {
            if ((d.reg & 7) < 4)
                raise_ud();
            kind = (d.reg & 7) - 4;
            bit = d.imm & (bits - 1);
        } else {
            kind = op == 0x1a3 ? 0 : op == 0x1ab ? 1 : op == 0x1b3 ? 2 : 3;
            uint64_t off = reg(d.reg, size);
            if (d.mod == 3) {
                bit = off & (bits - 1);
            } else {
                // Register bit offsets reach outside the operand: signed, in operand-size units.
                int64_t soff = size == 2 ? int16_t(off) : size == 4 ? int32_t(off) : int64_t(off);
                offset_bytes = uint64_t((soff >> (size == 2 ? 4 : size == 4 ? 5 : 6)) * int64_t(size));
                bit = uint64_t(soff) & (bits - 1);
            }
        }
        uint64_t v;
        uint64_t ea = 0;
        Seg seg = operand_seg(d);
        if (d.mod == 3) {
            v = reg(d.rm, size);
        } else {
            ea = effective_address(d) + offset_bytes;
            ea &= d.addrsize == 2 ? 0xffff : d.addrsize == 4 ? 0xffffffff : ~0ull;
            v = read_mem(seg, ea, size);
        }
        bool was = (v >> bit) & 1;
        uint64_t nv = v;
        if (kind == 1)
            nv |= 1ull << bit;
        else if (kind == 2)
            nv &= ~(1ull << bit);
        else if (kind == 3)
            nv ^= 1ull << bit;
        if (kind != 0) {
            if (d.mod == 3)
                set_reg(d.rm, size, nv);
            else
                write_mem(seg, ea, size, nv);
        }
        m_flags.set_eager(m_s.rflags, was ? k_flag_cf : 0, k_flag_cf);
        return true;
    }
    case 0x1bc:
    case 0x1bd: {
        uint64_t v = read_rm(d, size);
        const unsigned bits = size * 8;
        // Without BMI1/ABM advertised, F3 0F BC/BD are plain BSF/BSR, as on
        // the CPUs that lack them.
        bool count_form = d.rep()
            && (op == 0x1bc ? (m_model.features7_ebx() & x86::k_cpuid7_ebx_bmi1)
                            : (m_model.ext_features_ecx() & x86::k_cpuidx1_ecx_abm));
        if (count_form) { // TZCNT / LZCNT
            uint64_t r = v == 0 ? bits : op == 0x1bc ? __builtin_ctzll(v) : __builtin_clzll(v) - (64 - bits);
            set_reg(d.reg, size, r);
            uint64_t f = (v == 0 ? k_flag_cf : 0) | (r == 0 ? k_flag_zf : 0);
            set_arith_flags(f);
            return true;
        }
        if (v == 0) { // BSF/BSR: destination unchanged
            set_arith_flags(k_flag_zf);
            return true;
        }
        uint64_t r = op == 0x1bc ? __builtin_ctzll(v) : 63 - __builtin_clzll(v);
        set_reg(d.reg, size, r);
        set_arith_flags(0);
        return true;
    }
    case 0x2f0:
    case 0x2f1: { // MOVBE r, m / m, r (F2 0F 38 F0/F1 is CRC32, exec_sse4)
        if (d.repne())
            return false;
        if (d.rep() || d.mod == 3 || !(m_model.features1_ecx() & x86::k_cpuid1_ecx_movbe))
            raise_ud();
        auto swap = [&](uint64_t v) {
            return size == 2 ? uint64_t(__builtin_bswap16(uint16_t(v)))
                : size == 4  ? uint64_t(__builtin_bswap32(uint32_t(v)))
                             : __builtin_bswap64(v);
        };
        if (op == 0x2f0)
            set_reg(d.reg, size, swap(read_rm(d, size)));
        else
            write_rm(d, size, swap(reg(d.reg, size)));
        return true;
    }
    case 0x2f6: { // ADCX (66) / ADOX (F3): add with carry through CF or OF only
        if ((!d.has_66() && !d.rep()) || d.repne() || !(m_model.features7_ebx() & x86::k_cpuid7_ebx_adx))
            raise_ud();
        const bool adox = d.rep();
        const unsigned sz = d.rex_w() && m_mode64 ? 8 : 4;
        const uint64_t flag = adox ? k_flag_of : k_flag_cf;
        uint64_t a = reg(d.reg, sz), b = read_rm(d, sz);
        unsigned carry_in = (flags() & flag) ? 1 : 0;
        unsigned __int128 sum = static_cast<unsigned __int128>(a) + b + carry_in;
        bool carry = sz == 8 ? (sum >> 64) != 0 : (sum >> 32) != 0;
        set_reg(d.reg, sz, uint64_t(sum));
        m_flags.set_eager(m_s.rflags, carry ? flag : 0, flag);
        return true;
    }
    case 0x1b8: { // POPCNT (F3 only)
        if (!d.rep())
            raise_ud();
        uint64_t v = read_rm(d, size);
        set_reg(d.reg, size, __builtin_popcountll(v));
        set_arith_flags(v == 0 ? k_flag_zf : 0);
        return true;
    }
    default:
        return false;
    }
}

} // namespace kiln::accel::interp
