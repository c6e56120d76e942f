// The run loop: fetch (through the decoded-instruction cache), execute,
// deliver exceptions and interrupts, HLT, and the public facade.
#include "accel/interp/interpreter.h"

#include <cstdio>

#include "accel/interp/private/cpu.h"
#include "util/log.h"

namespace kiln::accel::interp {

using namespace x86;

const char* run_exit_name(RunExit exit)
{
    switch (exit) {
    case RunExit::Budget:
        return "budget";
    case RunExit::Kicked:
        return "kicked";
    case RunExit::Stopped:
        return "stopped";
    case RunExit::Reset:
        return "reset";
    case RunExit::InternalError:
        return "internal-error";
    }
    return "?";
}

InterpreterImpl::InterpreterImpl(VcpuHost& host, const CpuModel& model)
    : m_host(host)
    , m_mem(host.memory())
    , m_model(model)
    , m_decode_cache(k_decode_cache_entries)
    , m_block_slots(k_block_slots)
    , m_block_arena(k_block_arena_insns)
{
    uint64_t top = 0;
    for (const auto& r : m_mem.regions())
        top = std::max(top, r.guest_base + r.size_bytes);
    // Page bookkeeping covers RAM and ROM up to 64 GiB of guest-physical space.
    m_pages = std::min<uint64_t>(top, 64ull << 30) >> 12;
    m_page_gen.reset(new std::atomic<uint32_t>[m_pages]);
    for (uint64_t i = 0; i < m_pages; i++)
        m_page_gen[i].store(0, std::memory_order_relaxed);
    m_page_has_code.assign(m_pages, 0);
    reset(ResetKind::PowerOn);
}

void InterpreterImpl::reset(ResetKind kind)
{
    reset_cpu_state(m_s, kind, m_model.signature(), true);
    m_flags.clear();
    flush_tlb(true);
    update_mode();
    m_cpl = 0;
    m_check_irq = true;
    update_debug_state();
    m_trace.reset(m_s);
}

void InterpreterImpl::update_mode()
{
    const SegmentCache& cs = m_s.segment(Seg::CS);
    m_mode64 = m_s.long_mode_active() && (cs.attr & k_seg_l);
    if (m_mode64)
        m_code_size = CodeSize::Bits64;
    else if (m_s.protected_mode() && !m_s.v8086() && (cs.attr & k_seg_db))
        m_code_size = CodeSize::Bits32;
    else
        m_code_size = CodeSize::Bits16;
    // In protected mode CPL changes only through control transfers, which
    // set m_cpl themselves (run() seeds it from SS.DPL).
    if (!m_s.protected_mode())
        m_cpl = 0;
    else if (m_s.v8086())
        m_cpl = 3;
    // Decoded blocks assume the code size they were decoded for.
    m_block_end = true;
}

unsigned InterpreterImpl::stack_size() const
{
    if (m_mode64)
        return 8;
    return (m_s.segment(Seg::SS).attr & k_seg_db) ? 4 : 2;
}

uint64_t InterpreterImpl::stack_pointer() const
{
    switch (stack_size()) {
    case 2:
        return m_s.gpr[k_rsp] & 0xffff;
    case 4:
        return m_s.gpr[k_rsp] & 0xffffffff;
    default:
        return m_s.gpr[k_rsp];
    }
}

void InterpreterImpl::set_stack_pointer(uint64_t v)
{
    switch (stack_size()) {
    case 2:
        m_s.gpr[k_rsp] = (m_s.gpr[k_rsp] & ~0xffffull) | (v & 0xffff);
        break;
    case 4:
        m_s.gpr[k_rsp] = v & 0xffffffff;
        break;
    default:
        m_s.gpr[k_rsp] = v;
        break;
    }
}

void InterpreterImpl::push(uint64_t v, unsigned size)
{
    uint64_t sp = stack_pointer() - size;
    if (stack_size() == 2)
        sp &= 0xffff;
    else if (stack_size() == 4)
        sp &= 0xffffffff;
    write_mem(Seg::SS, sp, size, v);
    set_stack_pointer(sp);
}

uint64_t InterpreterImpl::pop(unsigned size)
{
    uint64_t sp = stack_pointer();
    uint64_t v = read_mem(Seg::SS, sp, size);
    set_stack_pointer(sp + size);
    return v;
}

void InterpreterImpl::jump_near_slow(uint64_t target)
{
    const DecodedInsn& d = *m_insn;
    if (m_mode64) {
        if (d.opsize == 2)
            target &= 0xffff;
        if (uint64_t(int64_t(target << 16) >> 16) != target)
            raise_gp0();
    } else {
        target &= d.opsize == 2 ? 0xffff : 0xffffffff;
        if (target > m_s.segment(Seg::CS).limit)
            raise_gp0();
    }
    m_next_rip = target;
    m_block_end = true;
}

const DecodedInsn& InterpreterImpl::fetch_decode()
{
    uint64_t rip = m_s.rip;
    uint64_t lin;
    if (m_mode64) {
        lin = rip;
    } else {
        const SegmentCache& cs = m_s.segment(Seg::CS);
        if (rip > cs.limit)
            raise_gp0();
        lin = (cs.base + rip) & 0xffffffff;
    }
    const bool user = m_cpl == 3;
    uint64_t gpa;
    uint8_t* p;
    if ((lin >> 12) == m_fetch_vpage && m_fetch_epoch == m_tlb_epoch && m_fetch_user == user) [[likely]] {
        p = m_fetch_host + (lin & 0xfff);
        gpa = m_fetch_gpa | (lin & 0xfff);
    } else {
        p = translate_fast(lin, Access::Fetch, user, gpa);
        if (p) {
            m_fetch_vpage = lin >> 12;
            m_fetch_epoch = m_tlb_epoch;
            m_fetch_user = user;
            m_fetch_host = p - (lin & 0xfff);
            m_fetch_gpa = gpa & ~0xfffull;
        }
    }
    unsigned in_page = 4096 - unsigned(lin & 0xfff);
    if (p) [[likely]] {
        // Indexed by the low address bits: consecutive instructions use
        // neighbouring entries, which the host prefetches well.
        DecodeCacheEntry& e = m_decode_cache[gpa & (k_decode_cache_entries - 1)];
        uint32_t gen = page_generation(gpa);
        uint8_t cs_tag = static_cast<uint8_t>(m_code_size);
        if (e.gpa == gpa && e.code_size == cs_tag && e.generation == gen) [[likely]]
            return e.insn;
        DecodeStatus st = decode(p, in_page, m_code_size, e.insn);
        if (st == DecodeStatus::Ok) {
            note_code_page(gpa);
            e.gpa = gpa;
            e.code_size = cs_tag;
            e.generation = gen;
            if (Log::enabled(LogCategory::InAsm)) [[unlikely]]
                m_trace.in_asm(lin, p, e.insn.length, m_code_size);
            return e.insn;
        }
        e.gpa = ~0ull;
        if (st == DecodeStatus::Invalid)
            raise_ud();
        if (st == DecodeStatus::TooLong)
            raise_gp0();
    }
    // Slow path: MMIO code or an instruction crossing a page boundary.
    uint8_t bytes[15];
    unsigned have = in_page < 15 ? in_page : 15;
    for (unsigned i = 0; i < have; i++)
        bytes[i] = p ? p[i] : uint8_t(phys_read(gpa + i, 1));
    DecodeStatus st = decode(bytes, have, m_code_size, m_uncached);
    if (st == DecodeStatus::NeedMore) {
        uint64_t next_lin = lin + have;
        if (!m_mode64)
            next_lin &= 0xffffffff;
        uint64_t gpa2;
        uint8_t* p2 = translate_fast(next_lin, Access::Fetch, user, gpa2);
        for (unsigned i = have; i < 15; i++)
            bytes[i] = p2 ? p2[i - have] : uint8_t(phys_read(gpa2 + i - have, 1));
        st = decode(bytes, 15, m_code_size, m_uncached);
    }
    if (st == DecodeStatus::Invalid)
        raise_ud();
    if (st != DecodeStatus::Ok)
        raise_gp0();
    if (Log::enabled(LogCategory::InAsm)) [[unlikely]]
        m_trace.in_asm(lin, bytes, m_uncached.length, m_code_size);
    return m_uncached;
}

namespace {

bool lockable(const DecodedInsn& d)
{
    if (!d.is_mem())
        return false;
    uint16_t op = d.op;
    unsigned r = d.reg & 7;
    if (op < 0x40)
        return (op & 7) < 2 && (op & 0x38) != 0x38;
    switch (op) {
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
        return r != 7;
    case 0x86:
    case 0x87:
        return true;
    case 0xf6:
    case 0xf7:
        return r == 2 || r == 3;
    case 0xfe:
    case 0xff:
        return r < 2;
    case 0x1ab:
    case 0x1b3:
    case 0x1bb:
    case 0x1b0:
    case 0x1b1:
    case 0x1c0:
    case 0x1c1:
        return true;
    case 0x1ba:
        return r >= 5;
    case 0x1c7:
        return r == 1;
    default:
        return false;
    }
}

} // namespace

void InterpreterImpl::execute(const DecodedInsn& d)
{
    if (d.lock()) [[unlikely]] {
        if (!lockable(d))
            raise_ud();
        execute_locked(d);
        return;
    }
    if ((d.op == 0x86 || d.op == 0x87) && d.is_mem()) { // XCHG with memory is always locked
        execute_locked(d);
        return;
    }
    dispatch(d);
}

void InterpreterImpl::dispatch(const DecodedInsn& d)
{
    // Dispatch straight to the group learnt for this opcode. FF and 63 are
    // split between groups by ModRM.reg / mode, so they always take the chain.
    using Handler = bool (InterpreterImpl::*)(const DecodedInsn&);
    static constexpr Handler groups[] = { &InterpreterImpl::exec_alu, &InterpreterImpl::exec_control,
        &InterpreterImpl::exec_bits, &InterpreterImpl::exec_string, &InterpreterImpl::exec_system,
        &InterpreterImpl::exec_sse, &InterpreterImpl::exec_x87 };
    if (d.vex) [[unlikely]] { // VEX opcodes are k_map_vex | ...: outside m_group
        exec_vex(d);
        return;
    }
    uint8_t g = m_group[d.op & 0x3ff];
    if (g && (this->*groups[g - 1])(d))
        return;
    for (unsigned i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        if ((this->*groups[i])(d)) {
            if (d.op != 0xff && d.op != 0x63)
                m_group[d.op & 0x3ff] = uint8_t(i + 1);
            return;
        }
    }
    if (Log::enabled(LogCategory::Unimp)) {
        char buf[96];
        snprintf(buf, sizeof buf, "interp: unimplemented opcode %03x /%u at %llx", d.op, d.reg & 7,
            (unsigned long long)m_s.rip);
        Log::write(LogCategory::Unimp, buf);
    }
    raise_ud();
}

void InterpreterImpl::execute_one()
{
    const uint64_t start_rip = m_s.rip;
    try {
        const DecodedInsn& d = fetch_decode();
        m_insn = &d;
        uint64_t next = start_rip + d.length;
        if (!m_mode64)
            next &= m_code_size == CodeSize::Bits16 ? 0xffff : 0xffffffff;
        m_next_rip = next;
        const uint8_t shadow_before = m_s.events.interrupt_shadow;
        const bool single_step = m_s.rflags & k_flag_tf;
        m_new_shadow = 0;
        if (m_debug_hooks) [[unlikely]]
            debug_before(start_rip);
        execute(d);
        m_s.rip = m_next_rip;
        m_s.events.interrupt_shadow = m_new_shadow;
        if (shadow_before && !m_new_shadow)
            m_check_irq = true;
        m_retired++;
        if (m_debug_hooks) [[unlikely]]
            debug_after();
        // Single-step trap after an instruction that started with TF set
        // (and did not clear it by delivering an event); MOV SS delays it.
        if (single_step && (m_s.rflags & k_flag_tf) && !(m_new_shadow & PendingEvents::k_shadow_mov_ss)) [[unlikely]] {
            m_s.dr[6] |= 1u << 14; // BS
            deliver(k_db, EventKind::Exception, false, 0, m_s.rip);
            m_block_end = true;
        }
    } catch (const CpuException& e) {
        m_s.events.interrupt_shadow = 0;
        m_s.rip = start_rip;
        handle_exception(e, start_rip);
        m_block_end = true;
    }
}

namespace {

bool contributory(uint8_t v) { return v == k_de || (v >= k_ts && v <= k_gp); }

} // namespace

void InterpreterImpl::handle_exception(const CpuException& first, uint64_t fault_rip)
{
    CpuException cur = first;
    for (;;) {
        try {
            deliver(cur.vector, EventKind::Exception, cur.has_error, cur.error, fault_rip);
            return;
        } catch (const CpuException& again) {
            if (cur.vector == k_df) {
                m_trace.triple_fault(m_s);
                m_host.request_reset();
                throw CpuExit { RunExit::Reset };
            }
            if (Log::enabled(LogCategory::Int)) {
                char buf[64];
                snprintf(buf, sizeof buf, "check_exception old: 0x%x new 0x%x", cur.vector, again.vector);
                Log::write(LogCategory::Int, buf);
            }
            bool c1 = contributory(cur.vector), p1 = cur.vector == k_pf;
            bool c2 = contributory(again.vector), p2 = again.vector == k_pf;
            if ((c1 && c2) || (p1 && (c2 || p2)))
                cur = CpuException { k_df, true, 0 };
            else
                cur = again;
        }
    }
}

bool InterpreterImpl::check_events()
{
    m_check_irq = false;
    if (m_s.events.interrupt_shadow) {
        m_check_irq = true;
        return false;
    }
    if (!m_s.events.nmi_blocked && m_host.nmi_pending()) {
        m_host.acknowledge_nmi();
        try {
            deliver(k_nmi, EventKind::Nmi, false, 0, m_s.rip);
        } catch (const CpuException& e) {
            handle_exception(e, m_s.rip);
        }
        return true;
    }
    if (!(m_s.rflags & k_flag_if))
        return false;
    if (!m_host.interrupt_pending())
        return false;
    uint8_t vector = m_host.acknowledge_interrupt();
    try {
        deliver(vector, EventKind::External, false, 0, m_s.rip);
    } catch (const CpuException& e) {
        handle_exception(e, m_s.rip);
    }
    return true;
}

void InterpreterImpl::halt()
{
    m_s.halted = true;
    m_block_end = true;
}

void InterpreterImpl::fold_state() { m_flags.materialize(m_s.rflags); }

RunExit InterpreterImpl::run(uint64_t max_instructions)
{
    m_flags.clear();
    update_mode();
    m_cpl = m_s.cpl();
    m_check_irq = true;
    update_debug_state(); // DR7 may have been set from outside (loadvm, gdbstub)
    m_trace_blocks = Log::enabled(LogCategory(uint32_t(LogCategory::Exec) | uint32_t(LogCategory::Cpu)));
    const uint64_t end = m_retired + max_instructions;
    RunExit exit = RunExit::Budget;
    try {
        for (;;) {
            if (m_kick.load(std::memory_order_relaxed) && m_kick.exchange(false)) {
                exit = RunExit::Kicked;
                break;
            }
            if (m_retired >= end)
                break;
            if (m_s.halted) {
                m_flags.materialize(m_s.rflags);
                if (check_events())
                    continue;
                m_retired++;
                if (!m_host.wait_for_interrupt()) {
                    exit = RunExit::Stopped;
                    break;
                }
                m_check_irq = true;
                continue;
            }
            if (m_check_irq) {
                m_flags.materialize(m_s.rflags);
                check_events();
            }
            block_hooks();
            // A block also ends when an event may have become deliverable
            // (IF set, shadow over, device access).
            if (!run_block(end - m_retired)) {
                m_block_end = false;
                execute_one();
            }
        }
    } catch (const CpuExit& e) {
        exit = e.exit;
    }
    fold_state();
    return exit;
}

// ---- Facade ----

Result<std::unique_ptr<Interpreter>> Interpreter::create(VcpuHost& host, const CpuModel& model)
{
    auto impl = std::make_unique<InterpreterImpl>(host, model);
    return std::unique_ptr<Interpreter>(new Interpreter(std::move(impl)));
}

Interpreter::Interpreter(std::unique_ptr<InterpreterImpl> impl)
    : m_impl(std::move(impl))
{
}
Interpreter::~Interpreter() = default;
CpuState& Interpreter::state() { return m_impl->state(); }
const CpuModel& Interpreter::model() const { return m_impl->model(); }
void Interpreter::reset(ResetKind kind) { m_impl->reset(kind); }
RunExit Interpreter::run(uint64_t max_instructions) { return m_impl->run(max_instructions); }
void Interpreter::kick() { m_impl->kick(); }
void Interpreter::invalidate_code(uint64_t gpa, uint64_t len) { m_impl->invalidate_code(gpa, len); }
uint64_t Interpreter::instructions_retired() const { return m_impl->instructions_retired(); }

} // namespace kiln::accel::interp
