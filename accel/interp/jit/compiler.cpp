// Block compiler. Shape of the generated code (README.md has the details):
//
//   prologue: save RBX RBP R12 R13 R14; RBX = InterpreterImpl*, R12/R13 =
//   the read/write TLB rows for the CPL.
//   per instruction, either
//     inline host code: guest registers are read from and written to
//     CpuState::gpr through RBX; memory operands take an inline software-TLB
//     lookup and, on any miss, a cold path that runs the instruction's
//     interpreter handler instead; or
//     a handler call: RIP/next RIP/m_insn stored, call_handler thunk, fault
//     check, then the checks chain() makes (block end, IRQ check, shadow).
//   exits: RAX = instructions completed (| k_exit_fault), epilogue.
//
// Arithmetic flags: inline instructions compute them with the host's own
// ALU. They stay in the host's EFLAGS while the next instruction needs them
// (Jcc, SETcc, CMOVcc, ADC, INC...) and are stored into RFLAGS (clearing the
// lazy-flags record) only when something can observe them: a handler, a
// possible fault, a block exit. A backward pass over the block (flag
// liveness) drops them when the next flag writer overwrites them all first.
#include "accel/interp/jit/compiler.h"

#include <cstddef>
#include <functional>

#include "accel/interp/jit/emitter.h"
#include "accel/interp/jit/plan.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp::jit {

using namespace x86;

namespace {

constexpr uint8_t k_cpu = RBX;
constexpr uint8_t k_read_tlb = R12;
constexpr uint8_t k_write_tlb = R13;
constexpr uint8_t k_loops = R14; // budget left (instructions), less passes before this one
constexpr int32_t k_arith_mask = 0x8d5; // CF PF AF ZF SF OF
constexpr unsigned k_cc_b = 0x2, k_cc_ne = 0x5, k_cc_nz = 0x5, k_cc_e = 0x4, k_cc_a = 0x7;

static_assert(k_tlb_entries == 256, "the inline TLB index is the low byte of the page number");
static_assert(sizeof(TlbEntry) < 128, "the slot offset is an imul by an 8-bit immediate");

class BlockCompiler {
public:
    BlockCompiler(const Layout& layout, const Thunks& thunks, const BlockInsn* insns, unsigned count, uint64_t rip,
        const SelfLoop& loop, const Chaining& chaining)
        : L(layout)
        , T(thunks)
        , m_loop(loop)
        , m_chaining(chaining)
        , m_insns(insns)
        , m_count(count)
    {
        m_rip.resize(count + 1);
        m_rip[0] = rip;
        // A direct JMP/CALL before the block's end is one the block was
        // decoded through (block_exec.cpp follows same-page targets): the
        // next instruction is at its target.
        m_followed.assign(count, false);
        for (unsigned i = 0; i < count; i++) {
            const DecodedInsn& d = insns[i].d;
            m_rip[i + 1] = seq_next(i);
            const bool transfer = d.op == 0xe9 || d.op == 0xeb || (d.op == 0xe8 && d.opsize == 8);
            if (i + 1 < count && transfer && d.opsize != 2) {
                m_followed[i] = true;
                m_rip[i + 1] += uint64_t(sign_extend(d.imm, d.imm_size));
            }
        }
    }

    std::vector<uint8_t> compile();
    void add_stats(CompileStats& stats) const
    {
        for (unsigned i = 0; i < m_count; i++) {
            if (m_handled[i]) {
                stats.handler_insns++;
                stats.handler_ops[m_insns[i].d.op & 0x3ff]++;
            } else {
                stats.inline_insns++;
            }
        }
    }

private:
    // Operands.
    Mem field(int32_t off) const { return Mem { k_cpu, k_no_host_reg, 0, off }; }
    Mem greg(unsigned r, unsigned size, const DecodedInsn& d) const
    {
        if (size == 1 && r >= 4 && r < 8 && !d.rex)
            return field(L.gpr + 8 * int32_t(r - 4) + 1); // AH, CH, DH, BH
        return field(L.gpr + 8 * int32_t(r));
    }
    void load_greg(unsigned size, uint8_t host, unsigned r, const DecodedInsn& d)
    {
        a.load(size, host, greg(r, size, d));
    }
    // A result in `host` (32-bit results already zero-extended) to a guest register.
    void store_greg(unsigned size, unsigned r, const DecodedInsn& d, uint8_t host)
    {
        a.store(size == 4 ? 8 : size, greg(r, size, d), host);
    }
    void store_u64(int32_t off, uint64_t v)
    {
        if (int64_t(v) == int64_t(int32_t(v))) {
            a.store_imm32(8, field(off), uint32_t(v));
        } else {
            a.mov_imm(RAX, v);
            a.store(8, field(off), RAX);
        }
    }

    // Flags.
    void save_flags();
    void emit_flag_save(); // emission only
    void flush_flags()
    {
        if (m_dirty)
            save_flags();
    }
    void clobber_flags()
    {
        flush_flags();
        m_host_valid = false;
    }
    void ensure_host_flags();
    void produced_flags(unsigned i)
    {
        m_host_valid = true;
        m_dirty = m_live_after[i];
    }
    // After an instruction that keeps some flags: only exact if the host
    // flags were the guest's before it (ensured when they are live).
    void kept_flags(unsigned i)
    {
        if (m_live_after[i])
            produced_flags(i);
        else
            m_host_valid = m_dirty = false;
    }

    // Exits and cold code.
    void cold(std::function<void()> f) { m_cold.push_back(std::move(f)); }
    void exit_with(uint64_t value) // RAX = value, then the epilogue
    {
        a.mov_imm(RAX, value);
        m_epilogue_jumps.push_back(a.jmp());
    }
    void exit_checks(unsigned done);
    void emit_taken(unsigned i, uint64_t target, bool flags_dirty);
    void emit_exit_to(unsigned done, uint64_t target);
    void emit_chain(unsigned done, uint64_t target, uint8_t dynamic);
    void emit_handler(unsigned i);
    void emit_call_handler(unsigned i); // emission only: no change to the flag state
    void emit_instruction(unsigned i, const Plan& p);
    void emit_ea(const DecodedInsn& d, uint64_t next_rip);
    std::vector<Label> emit_tlb_lookup(unsigned size, bool write);
    void emit_imm(unsigned size, uint64_t imm);
    void emit_movx(const Plan& p, const DecodedInsn& d, const Mem& src);
    Label emit_noncanonical_branch(uint8_t reg);
    void emit_memory(unsigned i, const Plan& p);
    void emit_alu_host(unsigned op, unsigned size, uint8_t dst, uint8_t src);

    const Layout& L;
    const Thunks& T;
    SelfLoop m_loop;
    Chaining m_chaining;
    bool m_last_handler = false; // the last instruction emitted was a handler call
    bool m_last_dynamic = false; // ... an inline RET or indirect JMP/CALL (its target in RSI)
    uint32_t m_body = 0; // offset of the first instruction's code (self-loops jump here)
    const BlockInsn* m_insns;
    unsigned m_count;
    std::vector<uint64_t> m_rip; // m_rip[i]: instruction i; m_rip[count]: after the block
    std::vector<bool> m_followed; // a direct JMP/CALL the block continues through
    uint64_t seq_next(unsigned i) const { return m_rip[i] + m_insns[i].d.length; }
    std::vector<bool> m_live_after;
    std::vector<bool> m_handled; // ran through its handler (statistics)
    Emitter a;
    std::vector<std::function<void()>> m_cold;
    std::vector<Label> m_epilogue_jumps;
    bool m_host_valid = false; // host EFLAGS hold the guest's arithmetic flags
    bool m_dirty = false; // ... and RFLAGS does not (yet) while they are live
    bool m_eager = false; // no lazy-flags record is pending: RFLAGS is current unless dirty
    bool m_rip_set = false; // the last instruction stored RIP itself (a taken transfer)
};

void BlockCompiler::save_flags()
{
    emit_flag_save();
    m_dirty = false;
    m_eager = true;
}

void BlockCompiler::emit_flag_save()
{
    a.pushfq();
    a.pop(RAX);
    a.alu_ri(4, 4, RAX, k_arith_mask); // and eax
    a.load(8, RCX, field(L.rflags));
    a.alu_ri(4, 8, RCX, ~k_arith_mask); // and rcx
    a.op_reg({ 0x09 }, 8, RAX, RCX); // or rcx, rax
    a.store(8, field(L.rflags), RCX);
    a.store_imm32(1, field(L.flags_op), 0);
}

void BlockCompiler::ensure_host_flags()
{
    if (m_host_valid)
        return;
    if (!m_eager) {
        // Fold a pending lazy-flags record (left by a handler or by the
        // interpreter before the block) into RFLAGS.
        a.op_mem({ 0x80 }, 1, 7, field(L.flags_op)); // cmp byte [op], 0
        a.byte(0);
        Label none = a.jcc(k_cc_e);
        a.mov_rr(8, RDI, k_cpu);
        a.call_abs(T.materialize_flags);
        a.bind(none);
        m_eager = true;
    }
    a.load(8, RAX, field(L.rflags));
    a.alu_ri(4, 4, RAX, k_arith_mask);
    a.push(RAX);
    a.popfq();
    m_host_valid = true;
}

void BlockCompiler::exit_checks(unsigned done)
{
    // What chain() checks after each instruction.
    a.load(1, RAX, field(L.block_end));
    a.op_mem({ 0x0a }, 1, RAX, field(L.check_irq)); // or al, [check_irq]
    a.op_mem({ 0x0a }, 1, RAX, field(L.new_shadow));
    Label l = a.jcc(k_cc_nz);
    cold([this, l, done] {
        a.bind(l);
        exit_with(done);
    });
}

// A taken branch of instruction i to `target`.
void BlockCompiler::emit_taken(unsigned i, uint64_t target, bool flags_dirty)
{
    if (flags_dirty)
        emit_flag_save();
    emit_exit_to(i + 1, target);
}

// Leaves the block with `done` instructions of this pass retired and RIP =
// `target` (flags already in RFLAGS). Before returning to the run loop: the
// block's own start runs again if the budget (R14) holds another full pass,
// no kick is pending and the page's code is unchanged; a linked successor
// runs if its cell still holds (see ChainCell).
void BlockCompiler::emit_exit_to(unsigned done, uint64_t target)
{
    store_u64(L.rip, target);
    if (target == m_rip[0] && m_loop.generation_addr) {
        a.alu_ri(7, 8, k_loops, int32_t(done + m_count)); // cmp r14, done + count
        Label none = a.jcc(k_cc_b);
        a.op_mem({ 0x80 }, 1, 7, field(L.kick)); // cmp byte [kick], 0
        a.byte(0);
        Label kicked = a.jcc(k_cc_ne);
        a.mov_imm(RAX, reinterpret_cast<uint64_t>(m_loop.generation_addr));
        a.op_mem({ 0x81 }, 4, 7, Mem { RAX }); // cmp dword [rax], generation
        a.imm32(m_loop.generation);
        Label changed = a.jcc(k_cc_ne);
        a.alu_ri(5, 8, k_loops, int32_t(done)); // sub r14, done
        a.jmp_to(m_body);
        a.bind(none);
        a.bind(kicked);
        a.bind(changed);
    }
    emit_chain(done, target, k_no_host_reg);
}

// The chained exit (see ChainCell) with `done` instructions retired in this
// pass: to `target`, or (a return) to the RIP in host register `dynamic`,
// which must equal the cell's last target.
void BlockCompiler::emit_chain(unsigned done, uint64_t target, uint8_t dynamic)
{
    ChainCell* cell = m_chaining.cells ? m_chaining.cells->take(target) : nullptr;
    if (!cell) {
        exit_with(done);
        return;
    }
    cell->dynamic = dynamic != k_no_host_reg;
    auto at = [](size_t off) { return Mem { RAX, k_no_host_reg, 0, int32_t(off) }; };
    std::vector<Label> no;
    a.mov_imm(RAX, reinterpret_cast<uint64_t>(cell));
    if (cell->dynamic) {
        a.op_mem({ 0x3b }, 8, dynamic, at(offsetof(ChainCell, target))); // cmp reg, [cell.target]
        no.push_back(a.jcc(k_cc_ne));
    }
    a.load(8, RCX, at(offsetof(ChainCell, body)));
    a.op_reg({ 0x85 }, 8, RCX, RCX);
    no.push_back(a.jcc(k_cc_e));
    a.op_mem({ 0x3b }, 8, k_read_tlb, at(offsetof(ChainCell, read_tlb))); // same CPL
    no.push_back(a.jcc(k_cc_ne));
    a.load(8, RDX, field(L.tlb_epoch));
    a.op_mem({ 0x3b }, 8, RDX, at(offsetof(ChainCell, tlb_epoch)));
    no.push_back(a.jcc(k_cc_ne));
    a.load(4, RDX, field(L.arena_epoch));
    a.op_mem({ 0x3b }, 4, RDX, at(offsetof(ChainCell, arena_epoch)));
    no.push_back(a.jcc(k_cc_ne));
    a.load(8, RDX, at(offsetof(ChainCell, generation_addr)));
    a.load(4, RDX, Mem { RDX });
    a.op_mem({ 0x3b }, 4, RDX, at(offsetof(ChainCell, generation)));
    no.push_back(a.jcc(k_cc_ne));
    a.op_mem({ 0x80 }, 1, 7, field(L.kick)); // cmp byte [kick], 0
    a.byte(0);
    no.push_back(a.jcc(k_cc_ne));
    a.load(4, RDX, at(offsetof(ChainCell, count)));
    a.alu_ri(0, 8, RDX, int32_t(done)); // add rdx, done
    a.op_reg({ 0x3b }, 8, k_loops, RDX); // cmp r14, rdx
    no.push_back(a.jcc(k_cc_b));
    a.alu_ri(5, 8, k_loops, int32_t(done)); // sub r14, done
    a.op_reg({ 0xff }, 4, 4, RCX); // jmp rcx
    for (Label l : no)
        a.bind(l);
    a.mov_imm(RDX, reinterpret_cast<uint64_t>(m_chaining.exit_cell));
    a.store(8, Mem { RDX }, RAX);
    exit_with(done);
}

void BlockCompiler::emit_call_handler(unsigned i)
{
    const BlockInsn& x = m_insns[i];
    store_u64(L.rip, m_rip[i]);
    // A direct JMP/CALL the block continues through has its own next
    // RIP; its handler (below) moves RIP to the target.
    store_u64(L.next_rip, m_rip[i] + x.d.length);
    a.mov_imm(RDX, reinterpret_cast<uint64_t>(&x.d));
    a.store(8, field(L.insn), RDX);
    a.mov_rr(8, RDI, k_cpu);
    // The handler that records every flag and runs one instruction (the
    // block's own may skip dead flags or fuse a pair, which only holds
    // when the whole block runs through them).
    a.mov_imm(RSI, reinterpret_cast<uint64_t>(select_handler(x.d, CodeSize::Bits64)));
    a.call_abs(T.call_handler);
    a.op_reg({ 0x85 }, 4, RAX, RAX); // test eax, eax
    Label fault = a.jcc(k_cc_nz);
    cold([this, fault, i] {
        a.bind(fault);
        exit_with(k_exit_fault | i);
    });
    exit_checks(i + 1);
}

void BlockCompiler::emit_handler(unsigned i)
{
    clobber_flags();
    emit_call_handler(i);
    m_handled[i] = true;
    m_last_handler = true;
    // The handler may have left a lazy-flags record; chain() stored RIP.
    m_rip_set = true;
    m_eager = false;
    m_host_valid = false;
    m_dirty = false;
}

std::vector<uint8_t> BlockCompiler::compile()
{
    std::vector<Plan> plans(m_count);
    for (unsigned i = 0; i < m_count; i++)
        plans[i] = plan_instruction(m_insns[i].d, L.flags_op >= 0);
    // Flag liveness, backwards: the flags are live after the block and
    // wherever something may observe them.
    m_live_after.assign(m_count, true);
    m_handled.assign(m_count, false);
    bool live = true;
    for (unsigned i = m_count; i-- > 0;) {
        m_live_after[i] = live;
        const Plan& p = plans[i];
        // An instruction that keeps some flags passes liveness through.
        if (p.form == Form::Handler || p.reads_flags || p.observes)
            live = true;
        else if (p.writes_flags)
            live = false;
    }

    a.push(RBX);
    a.push(RBP);
    a.push(R12);
    a.push(R13);
    a.push(R14);
    a.mov_rr(8, k_cpu, RDI);
    a.mov_rr(8, k_read_tlb, RSI);
    a.mov_rr(8, k_write_tlb, RDX);
    a.mov_rr(8, k_loops, RCX);
    m_body = a.size();
    if (m_body != k_body_offset)
        m_chaining.cells = nullptr; // (the prologue above is k_body_offset bytes)
    for (unsigned i = 0; i < m_count; i++) {
        m_rip_set = false;
        m_last_handler = false;
        m_last_dynamic = false;
        if (plans[i].form == Form::Handler)
            emit_handler(i);
        else
            emit_instruction(i, plans[i]);
    }
    flush_flags();
    // Falling off the block's end (RIP is the next instruction's, also after
    // a handler that did not end the block); taken transfers exited already.
    if (!m_rip_set || m_last_handler)
        emit_exit_to(m_count, m_rip[m_count]);
    else if (m_last_dynamic)
        emit_chain(m_count, 0, RSI); // the target (inline RET/JMP/CALL left it in RSI)
    a.mov_imm(RAX, m_count);
    const uint32_t epilogue = a.size();
    a.shift_ri(4, 8, k_loops, k_loops_shift); // the budget left, for Jit::run
    a.op_reg({ 0x09 }, 8, k_loops, RAX); // or rax, r14
    a.pop(R14);
    a.pop(R13);
    a.pop(R12);
    a.pop(RBP);
    a.pop(RBX);
    a.ret();
    // Cold code may add more cold code (and epilogue jumps).
    for (size_t k = 0; k < m_cold.size(); k++) {
        auto f = std::move(m_cold[k]);
        f();
    }
    for (Label l : m_epilogue_jumps)
        a.bind_to(l, epilogue);
    return a.bytes();
}

void BlockCompiler::emit_alu_host(unsigned op, unsigned size, uint8_t dst, uint8_t src)
{
    const uint8_t wide = size == 1 ? 0 : 1;
    if (op == 8)
        a.op_reg({ uint8_t(0x84 + wide) }, size, src, dst);
    else
        a.op_reg({ uint8_t(op * 8 + wide) }, size, src, dst);
}

// A branch taken when the address in `reg` is not canonical (a near
// transfer's #GP, left to the handler).
Label BlockCompiler::emit_noncanonical_branch(uint8_t reg)
{
    a.mov_rr(8, RCX, reg);
    a.shift_ri(4, 8, RCX, 16);
    a.shift_ri(7, 8, RCX, 16); // sign-extended from bit 47
    a.op_reg({ 0x3b }, 8, RCX, reg);
    return a.jcc(k_cc_ne);
}

// MOVZX/MOVSX/MOVSXD from `src` (a guest register or the host pointer).
void BlockCompiler::emit_movx(const Plan& p, const DecodedInsn& d, const Mem& src)
{
    if (!p.sign)
        a.load(p.src_size, RAX, src);
    else if (p.src_size == 4)
        a.op_mem({ 0x63 }, 8, RAX, src);
    else
        a.op_mem({ 0x0f, uint8_t(p.src_size == 1 ? 0xbe : 0xbf) }, 8, RAX, src);
    if (p.sign && p.size == 4)
        a.mov_rr(4, RAX, RAX); // the 32-bit result, zero-extended
    store_greg(p.size, d.reg, d, RAX);
}

void BlockCompiler::emit_imm(unsigned size, uint64_t imm)
{
    if (size == 1)
        a.byte(uint8_t(imm));
    else if (size == 2)
        a.byte(uint8_t(imm)), a.byte(uint8_t(imm >> 8));
    else
        a.imm32(uint32_t(imm));
}

// Effective address (no segment base) into RSI, wrapped to the address size.
void BlockCompiler::emit_ea(const DecodedInsn& d, uint64_t next_rip)
{
    if (d.rip_relative) {
        a.mov_imm(RSI, next_rip + uint64_t(int64_t(d.disp)));
    } else {
        if (d.base != k_no_reg)
            a.load(8, RSI, field(L.gpr + 8 * d.base));
        else
            a.mov_imm(RSI, 0);
        if (d.index != k_no_reg) {
            a.load(8, RCX, field(L.gpr + 8 * d.index));
            a.lea(RSI, Mem { RSI, RCX, d.scale, d.disp });
        } else if (d.disp) {
            a.lea(RSI, Mem { RSI, k_no_host_reg, 0, d.disp });
        }
    }
    if (d.addrsize == 4)
        a.mov_rr(4, RSI, RSI);
}

// Linear address in RSI -> host pointer in RDI (RSI kept), as
// InterpreterImpl::direct_ptr(): a TLB entry for the page that maps RAM
// directly and an access that stays inside the page. Returns the branches
// to the slow path.
std::vector<Label> BlockCompiler::emit_tlb_lookup(unsigned size, bool write)
{
    std::vector<Label> slow;
    a.mov_rr(8, RDX, RSI);
    a.shift_ri(5, 8, RDX, 12); // shr rdx, 12: the page number picks the slot
    a.op_reg({ 0x0f, 0xb6 }, 4, RAX, RDX); // movzx eax, dl
    a.op_reg({ 0x6b }, 4, RAX, RAX); // imul eax, eax, sizeof(TlbEntry)
    a.byte(uint8_t(sizeof(TlbEntry)));
    a.lea(RDI, Mem { write ? k_write_tlb : k_read_tlb, RAX, 0, 0 });
    // The slot's direct tag is the page of the access's last byte (a miss,
    // MMIO or a page-crossing access never matches it).
    a.lea(RDX, Mem { RSI, k_no_host_reg, 0, int32_t(size - 1) });
    a.shift_ri(5, 8, RDX, 12);
    a.op_mem({ 0x3b }, 8, RDX, Mem { RDI, k_no_host_reg, 0, int32_t(offsetof(TlbEntry, direct)) });
    slow.push_back(a.jcc(k_cc_ne));
    a.load(8, RDI, Mem { RDI, k_no_host_reg, 0, int32_t(offsetof(TlbEntry, host)) });
    a.mov_rr(4, RAX, RSI);
    a.alu_ri(4, 4, RAX, 0xfff);
    a.op_reg({ 0x01 }, 8, RAX, RDI); // add rdi, rax
    return slow;
}

void BlockCompiler::emit_memory(unsigned i, const Plan& p)
{
    const DecodedInsn& d = m_insns[i].d;
    const unsigned S = p.size;
    const Mem host { RDI };
    const Mem rsp = field(L.gpr + 8 * k_rsp);
    if (p.form == Form::Lea) {
        emit_ea(d, seq_next(i));
        if (S == 4)
            a.mov_rr(4, RSI, RSI);
        store_greg(S, d.reg, d, RSI);
        return;
    }
    uint64_t call_target = 0;
    if (p.form == Form::Call) {
        call_target = seq_next(i) + uint64_t(sign_extend(d.imm, d.imm_size));
        if (!canonical(call_target))
            return emit_handler(i);
    }
    clobber_flags(); // the TLB check below changes the host flags
    unsigned access = S;
    bool write = false;
    switch (p.form) {
    case Form::Push:
    case Form::Call:
    case Form::CallInd:
        a.load(8, RSI, rsp);
        a.lea(RSI, Mem { RSI, k_no_host_reg, 0, -8 });
        access = 8;
        write = true;
        break;
    case Form::Pop:
    case Form::Ret:
        a.load(8, RSI, rsp);
        access = 8;
        break;
    default:
        emit_ea(d, seq_next(i));
        if (d.seg == uint8_t(Seg::FS) || d.seg == uint8_t(Seg::GS)) {
            a.load(8, RCX, field(d.seg == uint8_t(Seg::FS) ? L.fs_base : L.gs_base));
            a.lea(RSI, Mem { RSI, RCX, 0, 0 });
        }
        if (p.form == Form::MovxLoad)
            access = p.src_size;
        write = p.form == Form::MovStore || p.form == Form::MovStoreImm
            || (p.form == Form::AluStore && p.op != 7 && p.op != 8);
        break;
    }
    std::vector<Label> slow = emit_tlb_lookup(access, write);
    const int32_t imm = int32_t(sign_extend(d.imm, d.imm_size));
    const uint8_t wide = S == 1 ? 0 : 1;
    switch (p.form) {
    case Form::MovLoad:
        a.load(S, RAX, host);
        store_greg(S, d.reg, d, RAX);
        break;
    case Form::MovStore:
        load_greg(S, RAX, d.reg, d);
        a.store(S, host, RAX);
        break;
    case Form::MovStoreImm:
        a.store_imm32(S, host, uint32_t(imm));
        break;
    case Form::MovxLoad:
        emit_movx(p, d, host);
        break;
    case Form::AluLoad:
        load_greg(S, RAX, d.reg, d);
        a.op_mem({ uint8_t(p.op * 8 + 2 + wide) }, S, RAX, host);
        if (p.op != 7)
            store_greg(S, d.reg, d, RAX);
        break;
    case Form::AluStore:
        if (p.imm && p.op == 8) {
            a.op_mem({ uint8_t(0xf6 + wide) }, S, 0, host);
            emit_imm(S, uint64_t(imm));
        } else if (p.imm) {
            a.alu_mi(p.op, S, host, imm);
        } else {
            load_greg(S, RCX, d.reg, d);
            a.op_mem({ uint8_t(p.op == 8 ? 0x84 + wide : p.op * 8 + wide) }, S, RCX, host, true);
        }
        break;
    case Form::Push:
        load_greg(8, RAX, (d.op & 7) | ((d.rex & 1) << 3), d);
        a.store(8, host, RAX);
        a.store(8, rsp, RSI);
        break;
    case Form::Pop:
        a.load(8, RAX, host);
        a.lea(RSI, Mem { RSI, k_no_host_reg, 0, 8 });
        a.store(8, rsp, RSI);
        store_greg(8, (d.op & 7) | ((d.rex & 1) << 3), d, RAX);
        break;
    case Form::Call:
        a.mov_imm(RAX, seq_next(i));
        a.store(8, host, RAX);
        a.store(8, rsp, RSI);
        if (!m_followed[i]) {
            store_u64(L.rip, call_target);
            m_rip_set = true;
        }
        break;
    case Form::CallInd:
        // The target is read before RSP changes (CALL RSP uses the old one).
        a.load(8, R8, field(L.gpr + 8 * d.rm));
        slow.push_back(emit_noncanonical_branch(R8));
        a.mov_imm(RAX, seq_next(i));
        a.store(8, host, RAX);
        a.store(8, rsp, RSI);
        a.store(8, field(L.rip), R8);
        a.mov_rr(8, RSI, R8);
        m_rip_set = true;
        m_last_dynamic = i + 1 == m_count;
        break;
    case Form::Ret:
        a.load(8, RAX, host);
        slow.push_back(emit_noncanonical_branch(RAX));
        a.lea(RSI, Mem { RSI, k_no_host_reg, 0, 8 });
        a.store(8, rsp, RSI);
        a.store(8, field(L.rip), RAX);
        a.mov_rr(8, RSI, RAX);
        m_rip_set = true;
        m_last_dynamic = i + 1 == m_count;
        break;
    default:
        break;
    }
    if (p.writes_flags)
        produced_flags(i);
    const uint32_t join = a.size();
    // The slow path runs the instruction's handler (TLB miss, MMIO, code
    // pages, page-crossing, faults), then re-establishes what the fast path
    // leaves: no pending lazy record, and the flags in the host if it has them.
    const bool want_host = m_host_valid, want_eager = m_eager;
    cold([this, slow, i, join, want_host, want_eager] {
        for (Label l : slow)
            a.bind(l);
        emit_call_handler(i);
        if (want_host || want_eager) {
            a.mov_rr(8, RDI, k_cpu);
            a.call_abs(T.materialize_flags);
        }
        if (want_host) {
            a.load(8, RAX, field(L.rflags));
            a.alu_ri(4, 4, RAX, k_arith_mask);
            a.push(RAX);
            a.popfq();
        }
        a.jmp_to(join);
    });
}

void BlockCompiler::emit_instruction(unsigned i, const Plan& p)
{
    const DecodedInsn& d = m_insns[i].d;
    if (p.form == Form::Nop)
        return;
    if (d.is_mem())
        return emit_memory(i, p);
    switch (p.form) {
    case Form::Push:
    case Form::Pop:
    case Form::Call:
    case Form::CallInd:
    case Form::Ret:
        return emit_memory(i, p);
    default:
        break;
    }
    const unsigned S = p.size;
    const int32_t imm = int32_t(sign_extend(d.imm, d.imm_size));
    const uint8_t wide = S == 1 ? 0 : 1;
    // Flags an instruction keeps only matter if someone looks at them later.
    const bool keeps_live = p.keeps_flags && m_live_after[i];
    if (p.reads_flags || keeps_live)
        ensure_host_flags();
    switch (p.form) {
    case Form::Nop:
        return;
    case Form::MovRR: {
        const unsigned dst = (d.op & 2) ? d.reg : d.rm, src = (d.op & 2) ? d.rm : d.reg;
        load_greg(S, RAX, src, d);
        store_greg(S, dst, d, RAX);
        return;
    }
    case Form::MovRImm: {
        const bool short_form = d.op >= 0xb0 && d.op <= 0xbf;
        const unsigned dst = short_form ? (d.op & 7) | ((d.rex & 1) << 3) : d.rm;
        const uint64_t v = (short_form ? d.imm : uint64_t(sign_extend(d.imm, d.imm_size))) & size_mask(S);
        if (S >= 4) {
            a.mov_imm(RAX, v);
            store_greg(S, dst, d, RAX);
        } else {
            a.store_imm32(S, greg(dst, S, d), uint32_t(v));
        }
        return;
    }
    case Form::AluRR: {
        unsigned dst = d.rm, src = d.reg;
        if (d.op < 0x40 && (d.op & 2))
            std::swap(dst, src);
        load_greg(S, RAX, dst, d);
        load_greg(S, RCX, src, d);
        emit_alu_host(p.op, S, RAX, RCX);
        if (p.op != 7 && p.op != 8)
            store_greg(S, dst, d, RAX);
        produced_flags(i);
        return;
    }
    case Form::AluRImm: {
        const unsigned dst = p.acc ? unsigned(k_rax) : d.rm;
        load_greg(S, RAX, dst, d);
        if (p.op == 8) {
            a.op_reg({ uint8_t(0xf6 + wide) }, S, 0, RAX);
            emit_imm(S, uint64_t(imm));
        } else {
            a.alu_ri(p.op, S, RAX, imm);
        }
        if (p.op != 7 && p.op != 8)
            store_greg(S, dst, d, RAX);
        produced_flags(i);
        return;
    }
    case Form::Movx:
        emit_movx(p, d, greg(d.rm, p.src_size, d));
        return;
    case Form::IncDec:
        load_greg(S, RAX, d.rm, d);
        a.op_reg({ uint8_t(0xfe + wide) }, S, p.op, RAX);
        store_greg(S, d.rm, d, RAX);
        kept_flags(i);
        return;
    case Form::NotNeg:
        load_greg(S, RAX, d.rm, d);
        a.op_reg({ uint8_t(0xf6 + wide) }, S, p.op, RAX);
        store_greg(S, d.rm, d, RAX);
        if (p.op == 3)
            produced_flags(i);
        return;
    case Form::Shift:
        if (d.op >= 0xd2)
            a.load(1, RCX, field(L.gpr + 8 * k_rcx));
        load_greg(S, RAX, d.rm, d);
        if (d.op <= 0xc1) {
            a.op_reg({ uint8_t(0xc0 + wide) }, S, p.op, RAX);
            a.byte(uint8_t(d.imm));
        } else {
            a.op_reg({ uint8_t((d.op <= 0xd1 ? 0xd0 : 0xd2) + wide) }, S, p.op, RAX);
        }
        store_greg(S, d.rm, d, RAX);
        if (p.keeps_flags)
            kept_flags(i);
        else
            produced_flags(i);
        return;
    case Form::Imul:
        if (d.op == 0x1af) {
            load_greg(S, RAX, d.reg, d);
            a.op_mem({ 0x0f, 0xaf }, S, RAX, greg(d.rm, S, d));
        } else {
            a.op_mem({ uint8_t(d.op) }, S, RAX, greg(d.rm, S, d));
            emit_imm(d.op == 0x6b ? 1 : S == 2 ? 2 : 4, d.imm);
        }
        store_greg(S, d.reg, d, RAX);
        produced_flags(i);
        return;
    case Form::Cmov:
        load_greg(S, RAX, d.reg, d);
        a.op_mem({ 0x0f, uint8_t(0x40 + p.op) }, S, RAX, greg(d.rm, S, d));
        store_greg(S, d.reg, d, RAX);
        return;
    case Form::Setcc:
        a.op_reg({ 0x0f, uint8_t(0x90 + p.op) }, 1, 0, RAX);
        a.store(1, greg(d.rm, 1, d), RAX);
        return;
    case Form::Bswap: {
        const unsigned r = (d.op & 7) | ((d.rex & 1) << 3);
        load_greg(S, RAX, r, d);
        if (S == 8)
            a.byte(0x48); // REX.W
        a.byte(0x0f);
        a.byte(0xc8); // bswap (e/r)ax
        store_greg(S, r, d, RAX);
        return;
    }
    case Form::Jcc: {
        const uint64_t target = seq_next(i) + uint64_t(sign_extend(d.imm, d.imm_size));
        if (!canonical(target))
            return emit_handler(i);
        Label taken = a.jcc(p.op);
        const bool dirty = m_dirty;
        cold([this, taken, dirty, target, i] {
            a.bind(taken);
            emit_taken(i, target, dirty);
        });
        return;
    }
    case Form::JmpInd: {
        clobber_flags();
        a.load(8, RSI, field(L.gpr + 8 * d.rm));
        Label bad = emit_noncanonical_branch(RSI);
        cold([this, bad, i] {
            a.bind(bad);
            emit_call_handler(i); // #GP(0)
            exit_with(i + 1);
        });
        a.store(8, field(L.rip), RSI);
        m_rip_set = true;
        m_last_dynamic = i + 1 == m_count;
        return;
    }
    case Form::Jmp: {
        if (m_followed[i])
            return; // the block goes on at the target
        const uint64_t target = seq_next(i) + uint64_t(sign_extend(d.imm, d.imm_size));
        if (!canonical(target))
            return emit_handler(i);
        emit_taken(i, target, m_dirty);
        m_dirty = false;
        m_rip_set = true;
        return;
    }
    default:
        return emit_handler(i);
    }
}

} // namespace

std::vector<uint8_t> compile_block(const Layout& layout, const Thunks& thunks, const BlockInsn* insns, unsigned count,
    uint64_t rip, const SelfLoop& loop, const Chaining& chaining, CompileStats* stats)
{
    BlockCompiler c(layout, thunks, insns, count, rip, loop, chaining);
    std::vector<uint8_t> code = c.compile();
    if (stats)
        c.add_stats(*stats);
    return code;
}

} // namespace kiln::accel::interp::jit
