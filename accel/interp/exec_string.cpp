// String instructions with REP/REPE/REPNE, and port I/O (IN/OUT/INS/OUTS)
// with the IOPL and TSS I/O-permission-bitmap checks.
#include <cstring>

#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

// A REP instruction yields after this many iterations so interrupts and
// kicks are seen; it resumes by re-executing itself.
constexpr uint64_t k_rep_chunk = 16384;

} // namespace

void InterpreterImpl::check_io(uint16_t port, unsigned size)
{
    if (!m_s.protected_mode())
        return;
    unsigned iopl = (m_s.rflags & k_flag_iopl) >> 12;
    if (!m_s.v8086() && m_cpl <= iopl)
        return;
    // I/O permission bitmap in the TSS (32-bit or 64-bit TSS only).
    unsigned type = m_s.tr.attr & 0xf;
    if ((type != 0x9 && type != 0xb) || m_s.tr.limit < 103)
        raise_gp0();
    uint64_t base = read_linear(m_s.tr.base + 102, 2);
    uint64_t byte = base + port / 8;
    if (byte + 1 > m_s.tr.limit)
        raise_gp0();
    uint64_t bits = read_linear(m_s.tr.base + byte, 2);
    uint64_t mask = ((1u << size) - 1) << (port & 7);
    if (bits & mask)
        raise_gp0();
}

uint32_t InterpreterImpl::io_read(uint16_t port, unsigned size)
{
    check_io(port, size);
    if (io_breakpoints_armed()) [[unlikely]]
        check_io_breakpoints(port, size);
    m_check_irq = true;
    return m_host.pio_read(port, size);
}

void InterpreterImpl::io_write(uint16_t port, unsigned size, uint32_t v)
{
    check_io(port, size);
    if (io_breakpoints_armed()) [[unlikely]]
        check_io_breakpoints(port, size);
    m_check_irq = true;
    m_host.pio_write(port, size, v);
}

bool InterpreterImpl::exec_string(const DecodedInsn& d)
{
    const unsigned op = d.op;
    CpuState& s = m_s;
    switch (op) {
    case 0xe4:
    case 0xe5:
    case 0xec:
    case 0xed: { // IN
        unsigned sz = (op & 1) ? (d.opsize == 2 ? 2 : 4) : 1;
        uint16_t port = op < 0xec ? uint16_t(d.imm) : uint16_t(s.gpr[k_rdx]);
        set_reg(k_rax, sz, io_read(port, sz));
        return true;
    }
    case 0xe6:
    case 0xe7:
    case 0xee:
    case 0xef: { // OUT
        unsigned sz = (op & 1) ? (d.opsize == 2 ? 2 : 4) : 1;
        uint16_t port = op < 0xec ? uint16_t(d.imm) : uint16_t(s.gpr[k_rdx]);
        io_write(port, sz, uint32_t(reg(k_rax, sz)));
        return true;
    }
    case 0x6c:
    case 0x6d:
    case 0x6e:
    case 0x6f:
    case 0xa4:
    case 0xa5:
    case 0xa6:
    case 0xa7:
    case 0xaa:
    case 0xab:
    case 0xac:
    case 0xad:
    case 0xae:
    case 0xaf:
        break;
    default:
        return false;
    }

    unsigned sz;
    if (op >= 0x6c && op <= 0x6f)
        sz = (op & 1) ? (d.opsize == 2 ? 2 : 4) : 1;
    else
        sz = (op & 1) ? d.opsize : 1;
    const uint64_t am = addr_mask(d.addrsize);
    const bool rep = d.rep() || d.repne();
    const bool df = s.rflags & k_flag_df;
    const int64_t step = df ? -int64_t(sz) : int64_t(sz);
    const Seg src_seg = d.seg != k_no_seg ? Seg(d.seg) : Seg::DS;
    auto count = [&]() { return s.gpr[k_rcx] & am; };
    auto set_count = [&](uint64_t c) { set_reg(k_rcx, d.addrsize, c); };
    auto adv = [&](unsigned r, int64_t by) { set_reg(r, d.addrsize, (s.gpr[r] + uint64_t(by)) & am); };

    if (rep && count() == 0)
        return true;

    // Fast path: forward REP STOS / REP MOVS over RAM, a page at a time.
    if (rep && !df && (op == 0xaa || op == 0xab || op == 0xa4 || op == 0xa5) && m_mode64) {
        uint64_t done = 0;
        while (count() && done < k_rep_chunk * 8) {
            uint64_t di = s.gpr[k_rdi] & am;
            uint64_t dst_lin = linear(Seg::ES, di, sz, Access::Write);
            uint64_t n = count();
            uint64_t room = (4096 - (dst_lin & 0xfff)) / sz;
            uint64_t src_lin = 0;
            if (op >= 0xa4 && op <= 0xa5) {
                uint64_t si = s.gpr[k_rsi] & am;
                src_lin = linear(src_seg, si, sz, Access::Read);
                room = std::min(room, (4096 - (src_lin & 0xfff)) / sz);
            }
            n = std::min(n, room);
            if (n == 0)
                break; // element straddles a page: slow path below
            uint64_t gpa_d, gpa_s;
            uint8_t* pd = translate_fast(dst_lin, Access::Write, m_cpl == 3, gpa_d);
            if (!pd)
                break;
            if (op == 0xaa || op == 0xab) {
                uint64_t v = reg(k_rax, sz);
                if (sz == 1)
                    std::memset(pd, int(v), n);
                else
                    for (uint64_t i = 0; i < n; i++)
                        std::memcpy(pd + i * sz, &v, sz);
            } else {
                uint8_t* ps = translate_fast(src_lin, Access::Read, m_cpl == 3, gpa_s);
                if (!ps)
                    break;
                // Overlap with the destination ahead of the source repeats
                // elements when copied forward one at a time; do exactly that.
                if (pd > ps && pd < ps + n * sz) {
                    for (uint64_t i = 0; i < n * sz; i++)
                        pd[i] = ps[i];
                } else {
                    std::memmove(pd, ps, n * sz);
                }
                adv(k_rsi, int64_t(n * sz));
            }
            adv(k_rdi, int64_t(n * sz));
            set_count(count() - n);
            done += n;
        }
        if (count() == 0)
            return true;
        if (done >= k_rep_chunk * 8) {
            m_next_rip = s.rip;
            end_block();
            return true;
        }
    }

    uint64_t iterations = 0;
    for (;;) {
        uint64_t si = s.gpr[k_rsi] & am;
        uint64_t di = s.gpr[k_rdi] & am;
        bool stop_on_flags = false;
        switch (op) {
        case 0xa4:
        case 0xa5:
            write_mem(Seg::ES, di, sz, read_mem(src_seg, si, sz));
            adv(k_rsi, step);
            adv(k_rdi, step);
            break;
        case 0xaa:
        case 0xab:
            write_mem(Seg::ES, di, sz, reg(k_rax, sz));
            adv(k_rdi, step);
            break;
        case 0xac:
        case 0xad:
            set_reg(k_rax, sz, read_mem(src_seg, si, sz));
            adv(k_rsi, step);
            break;
        case 0xa6:
        case 0xa7: {
            uint64_t a = read_mem(src_seg, si, sz);
            uint64_t b = read_mem(Seg::ES, di, sz);
            uint64_t m = sz == 8 ? ~0ull : (1ull << (sz * 8)) - 1;
            m_flags.set(FlagOp::Sub, sz, (a - b) & m, a, b);
            adv(k_rsi, step);
            adv(k_rdi, step);
            stop_on_flags = true;
            break;
        }
        case 0xae:
        case 0xaf: {
            uint64_t a = reg(k_rax, sz);
            uint64_t b = read_mem(Seg::ES, di, sz);
            uint64_t m = sz == 8 ? ~0ull : (1ull << (sz * 8)) - 1;
            m_flags.set(FlagOp::Sub, sz, (a - b) & m, a, b);
            adv(k_rdi, step);
            stop_on_flags = true;
            break;
        }
        case 0x6c:
        case 0x6d: {
            // Check the destination before the port read has side effects.
            linear(Seg::ES, di, sz, Access::Write);
            uint32_t v = io_read(uint16_t(s.gpr[k_rdx]), sz);
            write_mem(Seg::ES, di, sz, v);
            adv(k_rdi, step);
            break;
        }
        default: { // 6E/6F OUTS
            uint64_t v = read_mem(src_seg, si, sz);
            io_write(uint16_t(s.gpr[k_rdx]), sz, uint32_t(v));
            adv(k_rsi, step);
            break;
        }
        }
        if (!rep)
            return true;
        set_count(count() - 1);
        if (count() == 0)
            return true;
        if (stop_on_flags) {
            bool zf = m_flags.zf(s.rflags);
            if (d.rep() && !zf)
                return true;
            if (d.repne() && zf)
                return true;
        }
        if (++iterations >= k_rep_chunk) {
            m_next_rip = s.rip; // resume this instruction after checking for events
            end_block();
            return true;
        }
    }
}

} // namespace kiln::accel::interp
