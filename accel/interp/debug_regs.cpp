// Memory-access hooks: alignment checks (#AC), and debug-register
// breakpoints (Intel SDM vol. 3, 17.2-17.3): instruction
// breakpoints (#DB fault before the instruction, suppressed once by
// RFLAGS.RF) and data breakpoints on writes or reads/writes (#DB trap
// after the instruction), with DR6.B0-B3 naming the breakpoints hit.
// I/O breakpoints (RW = 10 with CR4.DE) trap after IN/OUT/INS/OUTS (after
// the whole instruction for REP forms). General detect (DR7.GD) is not
// implemented. Data accesses are checked where they go through the
// segmented read_mem/write_mem path; the REP MOVS/STOS page fast path and
// descriptor-table or stack-frame writes made by event delivery are not.
#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

unsigned bp_enabled(uint64_t dr7, unsigned i) { return (dr7 >> (2 * i)) & 3; }
unsigned bp_rw(uint64_t dr7, unsigned i) { return (dr7 >> (16 + 4 * i)) & 3; }
unsigned bp_len_bytes(uint64_t dr7, unsigned i)
{
    static const unsigned bytes[4] = { 1, 2, 8, 4 };
    return bytes[(dr7 >> (18 + 4 * i)) & 3];
}

} // namespace

void InterpreterImpl::update_debug_state()
{
    const uint64_t dr7 = m_s.dr[7];
    m_dr_exec = 0;
    m_dr_data = 0;
    m_dr_io = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (!bp_enabled(dr7, i))
            continue;
        unsigned rw = bp_rw(dr7, i);
        if (rw == 0)
            m_dr_exec |= uint8_t(1u << i);
        else if (rw == 1 || rw == 3)
            m_dr_data |= uint8_t(1u << i);
        else if (m_s.cr4 & k_cr4_de) // RW = 10: I/O (undefined without CR4.DE)
            m_dr_io |= uint8_t(1u << i);
    }
    m_debug_hooks = m_dr_exec || m_dr_data || m_dr_io;
    update_mem_hooks();
}

void InterpreterImpl::debug_before(uint64_t rip)
{
    m_dr_hits = 0;
    m_rf_at_start = m_s.rflags & k_flag_rf;
    if (!m_dr_exec || m_rf_at_start)
        return;
    uint64_t lin = m_mode64 ? rip : (m_s.segment(Seg::CS).base + rip) & 0xffffffff;
    uint8_t hits = 0;
    for (unsigned i = 0; i < 4; i++)
        if ((m_dr_exec & (1u << i)) && m_s.dr[i] == lin)
            hits |= uint8_t(1u << i);
    if (hits) {
        m_s.dr[6] = (m_s.dr[6] & ~0xfull) | hits;
        raise(k_db);
    }
}

void InterpreterImpl::debug_after()
{
    // RF suppresses instruction breakpoints for one instruction only.
    if (m_rf_at_start)
        m_s.rflags &= ~k_flag_rf;
    if (!m_dr_hits)
        return;
    m_s.dr[6] = (m_s.dr[6] & ~0xfull) | m_dr_hits;
    m_dr_hits = 0;
    deliver(k_db, EventKind::Exception, false, 0, m_s.rip);
    m_block_end = true;
}

void InterpreterImpl::check_data_breakpoints(uint64_t lin, unsigned size, bool write)
{
    const uint64_t dr7 = m_s.dr[7];
    for (unsigned i = 0; i < 4; i++) {
        if (!(m_dr_data & (1u << i)) || (bp_rw(dr7, i) == 1 && !write))
            continue;
        uint64_t len = bp_len_bytes(dr7, i);
        uint64_t start = m_s.dr[i] & ~(len - 1);
        if (lin < start + len && start < lin + size)
            m_dr_hits |= uint8_t(1u << i);
    }
}

void InterpreterImpl::check_io_breakpoints(uint16_t port, unsigned size)
{
    const uint64_t dr7 = m_s.dr[7];
    for (unsigned i = 0; i < 4; i++) {
        if (!(m_dr_io & (1u << i)))
            continue;
        uint64_t len = bp_len_bytes(dr7, i);
        uint64_t start = m_s.dr[i] & 0xffff & ~(len - 1);
        if (port < start + len && start < uint64_t(port) + size)
            m_dr_hits |= uint8_t(1u << i);
    }
}

// #AC: with CR0.AM and RFLAGS.AC at CPL 3, a data access must be aligned
// to its size (an 80-bit x87 operand arrives as 8 + 2 bytes: 8-aligned).
void InterpreterImpl::check_alignment(Seg seg, uint64_t offset, unsigned size, Access access)
{
    if (size > 1 && (linear(seg, offset, size, access) & (size - 1)))
        raise(k_ac, 0);
}

uint64_t InterpreterImpl::read_mem_hooked(Seg seg, uint64_t offset, unsigned size)
{
    if (m_ac_check)
        check_alignment(seg, offset, size, Access::Read);
    uint64_t v = m_lock.active ? locked_read(seg, offset, size)
                               : read_linear(linear(seg, offset, size, Access::Read), size, false);
    if (m_dr_data)
        check_data_breakpoints(linear(seg, offset, size, Access::Read), size, false);
    return v;
}

void InterpreterImpl::write_mem_hooked(Seg seg, uint64_t offset, unsigned size, uint64_t value)
{
    if (m_ac_check)
        check_alignment(seg, offset, size, Access::Write);
    if (m_lock.active)
        locked_write(seg, offset, size, value);
    else
        write_linear(linear(seg, offset, size, Access::Write), size, value, false);
    if (m_dr_data)
        check_data_breakpoints(linear(seg, offset, size, Access::Write), size, true);
}

} // namespace kiln::accel::interp
