// Block execution: the common path of run(). Instructions are decoded a
// basic block at a time into an arena, each with its handler chosen once,
// and a block runs without per-instruction fetch, TLB or decode-cache
// lookups. Anything unusual (single-step, an interrupt shadow, code in
// MMIO, an instruction crossing a page, a fault on fetch) falls back to
// execute_one(), which handles every case one instruction at a time.
#include <new>

#include "accel/interp/jit/jit.h"
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"
#include "util/log.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

// Two block-level features that did not pay off in measurements on the
// Linux boot and the in-guest sha256 job (bench/README.md, "interpfast"):
// continuing a block through same-page JMP/CALL, and starting the next
// block straight from a taken branch (next_block()). Both work (the boot
// and the oracle/flow tests pass with them on) but were 5-10% slower in
// interleaved runs, so they are off.
constexpr bool k_follow_jumps = false;
constexpr bool k_chain_blocks = false;

// Instructions after which decoding stops: unconditional transfers and
// the ones that change how the following bytes would decode or run.
// Conditional jumps do not stop decoding; a taken one ends the block at
// run time (jump_near() calls end_block()), like every other state change.
bool ends_block(const DecodedInsn& d)
{
    switch (d.op) {
    case 0x07: case 0x17: case 0x1f: // POP ES/SS/DS
    case 0x8e: // MOV Sreg
    case 0x9a: // CALL far
    case 0x9d: // POPF
    case 0xc2: case 0xc3: case 0xca: case 0xcb: // RET
    case 0xcc: case 0xcd: case 0xce: case 0xcf: // INT3, INT, INTO, IRET
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: // LOOP, JCXZ
    case 0xe8: case 0xe9: case 0xea: case 0xeb: // CALL, JMP
    case 0xf1: case 0xf4: // INT1, HLT
    case 0xfa: case 0xfb: // CLI, STI
    case 0x100: case 0x101: // system group 6/7
    case 0x105: case 0x107: case 0x10b: // SYSCALL, SYSRET, UD2
    case 0x122: case 0x123: // MOV CRn/DRn
    case 0x130: case 0x134: case 0x135: // WRMSR, SYSENTER, SYSEXIT
    case 0x1a1: case 0x1a9: // POP FS/GS
    case 0x1b2: case 0x1b4: case 0x1b5: // LSS, LFS, LGS
        return true;
    case 0xff: { // CALL/JMP near and far indirect
        unsigned r = d.reg & 7;
        return r >= 2 && r <= 5;
    }
    default:
        return false;
    }
}

// Conditional branches: a taken one leaves the block, so every flag is
// live after it (the target's use of them is not known here).
bool may_leave_block(const DecodedInsn& d)
{
    return (d.op >= 0x70 && d.op <= 0x7f) || (d.op >= 0x180 && d.op <= 0x18f) || ends_block(d);
}

} // namespace

BlockSlot* InterpreterImpl::build_block(BlockSlot& s, uint8_t* host, uint64_t gpa, uint32_t gen)
{
    const uint8_t cs_tag = static_cast<uint8_t>(m_code_size);
    // Links, up to k_block_max_insns instructions and the sentinel.
    if (m_arena_used + 2 + k_block_max_insns > k_block_arena_insns) {
        // Recycle the whole arena: every slot built before is stale now.
        m_arena_used = 0;
        m_arena_epoch++;
    }
    // The block's links sit right before its first instruction, so the
    // cache line loaded to start the block usually holds them too.
    ArenaEntry* out = &m_block_arena[m_arena_used];
    new (&out->links) BlockLinks {};
    out++;
    unsigned off = unsigned(gpa & 0xfff);
    unsigned count = 0, bytes = 0;
    // -d in_asm: each instruction as its block is built (the block starts at RIP).
    const bool trace = Log::enabled(LogCategory::InAsm);
    const uint64_t lin0 = m_mode64 ? m_s.rip : (m_s.segment(Seg::CS).base + m_s.rip) & 0xffffffff;
    // 64-bit code: a direct JMP/CALL whose target is in the same page does
    // not end the block; decoding continues at the target (the handler only
    // moves RIP). Not while tracing (in_asm prints blocks as contiguous).
    const bool follow = k_follow_jumps && m_code_size == CodeSize::Bits64 && !trace;
    bool followed[k_block_max_insns] = {};
    while (count < k_block_max_insns && off < 4096) {
        BlockInsn& x = *new (&out[count].insn) BlockInsn {};
        // Never reads past the page; an instruction that crosses it (or
        // does not decode) is left to execute_one().
        if (decode(host + off, 4096 - off, m_code_size, x.d) != DecodeStatus::Ok)
            break;
        if (trace) [[unlikely]]
            m_trace.in_asm(lin0 + bytes, host + off, x.d.length, m_code_size);
        count++;
        bytes += x.d.length;
        off += x.d.length;
        if (follow && (x.d.op == 0xe9 || x.d.op == 0xeb || (x.d.op == 0xe8 && x.d.opsize == 8)) && x.d.opsize != 2) {
            // The target's offset in this page, if it stays in it.
            const uint64_t target = (lin0 & ~0xfffull) + off + uint64_t(sign_extend(x.d.imm, x.d.imm_size));
            if ((target >> 12) == (lin0 >> 12)) {
                followed[count - 1] = true;
                off = unsigned(target & 0xfff);
                continue;
            }
        }
        if (ends_block(x.d))
            break;
    }
    if (count == 0) {
        s.gpa = ~0ull;
        return nullptr;
    }
    // Flag liveness, backwards from the block's end (where every flag is
    // live, as it is after any instruction that may leave the block), picks
    // each instruction's handler.
    // live_in[i]: the flags live before instruction i.
    uint8_t live_in[k_block_max_insns + 1];
    live_in[count] = k_lf_all;
    for (unsigned i = count; i-- > 0;) {
        BlockInsn& x = out[i].insn;
        const uint8_t live = may_leave_block(x.d) && !followed[i] ? k_lf_all : live_in[i + 1];
        x.fn = followed[i] ? followed_transfer(x.d) : select_handler(x.d, m_code_size, live);
        const FlagUse u = flag_use(x.d);
        live_in[i] = uint8_t((live & ~u.must_write) | u.reads);
    }
    // Compare-and-branch pairs (64-bit code): the fall-through's liveness
    // decides whether the pair records its flags when not taken.
    if (m_code_size == CodeSize::Bits64) {
        for (unsigned i = 0; i + 1 < count; i++) {
            const unsigned after = i + 2 <= count ? i + 2 : count;
            if (ExecFn f = select_fused(out[i].insn.d, out[i + 1].insn.d, live_in[after] != 0))
                out[i].insn.fn = f;
        }
    }
    // The sentinel: chain() from the last instruction lands here and returns.
    new (&out[count].insn) BlockInsn { DecodedInsn {}, block_sentinel() };
    out[count].insn.d.length = 0;
    // Stores into this page must now invalidate (and end the block).
    note_code_page(gpa);
    s.gpa = gpa;
    s.generation = gen;
    s.arena_epoch = m_arena_epoch;
    s.first = m_arena_used + 1;
    s.count = uint16_t(count);
    s.bytes = uint16_t(bytes);
    s.code_size = cs_tag;
    m_arena_used += 2 + count;
    return &s;
}

bool InterpreterImpl::run_block(uint64_t budget)
{
    // Runs blocks back to back until something needs run()'s attention.
    // Returns false when not even one could run here.
    bool ran = false;
    BlockLinks* prev = nullptr;
    m_retire_limit = m_retired + budget;
    for (;;) {
        budget = m_retire_limit - m_retired;
        // Single-step, an interrupt shadow and armed debug registers need
        // the per-instruction checks of execute_one().
        if ((m_s.rflags & k_flag_tf) || m_s.events.interrupt_shadow || m_debug_hooks) [[unlikely]]
            return ran;
        const uint64_t rip = m_s.rip;
        uint64_t lin;
        uint64_t rip_mask = ~0ull;
        if (m_mode64) {
            lin = rip;
        } else {
            const SegmentCache& cs = m_s.segment(Seg::CS);
            if (rip > cs.limit)
                return ran;
            lin = (cs.base + rip) & 0xffffffff;
            rip_mask = m_code_size == CodeSize::Bits16 ? 0xffff : 0xffffffff;
        }
        const bool user = m_cpl == 3;
        if ((lin >> 12) != m_fetch_vpage || m_fetch_epoch != m_tlb_epoch || m_fetch_user != user) [[unlikely]] {
            uint64_t gpa;
            uint8_t* p;
            try {
                p = translate_fast(lin, Access::Fetch, user, gpa);
            } catch (const CpuException&) {
                return ran; // execute_one() raises the fault properly
            }
            if (!p)
                return ran; // code in MMIO
            m_fetch_vpage = lin >> 12;
            m_fetch_epoch = m_tlb_epoch;
            m_fetch_user = user;
            m_fetch_host = p - (lin & 0xfff);
            m_fetch_gpa = gpa & ~0xfffull;
        }
        const uint64_t gpa = m_fetch_gpa | (lin & 0xfff);
        const uint32_t gen = page_generation(gpa);
        uint32_t first;
        unsigned count;
        // Linked successor of the block that just ran (64-bit code): no
        // hash, no slot load. Valid while the target page's generation is
        // unchanged (links are recorded only between blocks of the current
        // arena epoch, and the arena is append-only within an epoch).
        if (prev && prev->gpa[0] == gpa && prev->generation[0] == gen) [[likely]] {
            first = prev->first[0];
            count = prev->count[0];
        } else if (prev && prev->gpa[1] == gpa && prev->generation[1] == gen) {
            first = prev->first[1];
            count = prev->count[1];
        } else {
            BlockSlot* b = &m_block_slots[(gpa * 0x9e3779b97f4a7c15ull) >> (64 - k_block_slot_bits)];
            if (b->gpa != gpa || b->generation != gen || b->arena_epoch != m_arena_epoch
                || b->code_size != static_cast<uint8_t>(m_code_size)) [[unlikely]] {
                const uint32_t epoch = m_arena_epoch;
                b = build_block(*b, m_fetch_host, gpa, gen);
                if (!b)
                    return ran;
                if (epoch != m_arena_epoch)
                    prev = nullptr; // the arena was recycled under it
            }
            if (!m_mode64) {
                // The whole block must lie inside CS and not wrap IP/EIP.
                uint64_t last = rip + b->bytes - 1;
                if (last > m_s.segment(Seg::CS).limit || last > rip_mask)
                    return ran;
            }
            first = b->first;
            count = b->count;
            if (prev) {
                unsigned v = prev->victim;
                prev->gpa[v] = gpa;
                prev->generation[v] = gen;
                prev->first[v] = first;
                prev->count[v] = uint16_t(count);
                prev->victim = uint8_t(v ^ 1);
            }
        }
        const BlockInsn* insns = &m_block_arena[first].insn;
        // A block runs whole: the flag liveness of its handlers assumes it
        // runs to its end or to an instruction that reads every flag. When
        // the budget ends inside it, only its first instruction runs, with
        // the handler that records every flag (m_stop_after_one stops chain()).
        const bool single = budget < count;
        m_block_end = false;
        m_branch_taken = false;
        // Only an instruction that sets a shadow changes this; it ends the block.
        m_new_shadow = 0;
        m_rip_mask = rip_mask;
        m_cur_first = insns;
        m_cur_links = &m_block_arena[first - 1].links;
        // Blocks may start each other (next_block()) in 64-bit code when
        // nothing watches block boundaries.
        m_chain_left = k_chain_blocks && m_mode64 && m_chain_blocks && !m_trace_blocks ? 64 : 0;
        m_insn = &insns[0].d;
        m_next_rip = (rip + insns[0].d.length) & rip_mask;
        try {
            // The JIT tier (accel/interp/jit/) runs hot blocks as host code
            // (it counts what it retired beyond m_insn, left at the first
            // instruction); otherwise each handler chains to the next (cpu.h
            // chain()).
            if (single || !m_jit || !m_jit->run(*this, first, count, budget)) {
                m_stop_after_one = single;
                if (single) [[unlikely]]
                    select_handler(insns[0].d, m_code_size)(*this, insns[0].d);
                else
                    insns[0].fn(*this, insns[0].d);
            }
        } catch (const CpuException& e) {
            // m_s.rip is the faulting instruction's (chain() sets it before
            // starting one; exec_generic restores it), and the ones before it
            // retired.
            m_stop_after_one = 0;
            m_retired += unsigned(reinterpret_cast<const BlockInsn*>(m_insn) - m_cur_first);
            m_s.events.interrupt_shadow = 0;
            handle_exception(e, m_s.rip);
            m_block_end = true;
            return true;
        }
        // m_insn is the last instruction started (of the block that ran
        // last: next_block() counted the ones before): it retired, unless it
        // is the sentinel (length 0).
        m_stop_after_one = 0;
        const unsigned started = unsigned(reinterpret_cast<const BlockInsn*>(m_insn) - m_cur_first);
        m_retired += started + (m_insn->length != 0 ? 1 : 0);
        m_s.events.interrupt_shadow = m_new_shadow;
        ran = true;
        // Links are only used in 64-bit code, where the code size cannot
        // change without ending the loop below (update_mode ends blocks but
        // the next block is looked up with the new mode: links are dropped
        // whenever the mode is not 64-bit).
        prev = m_mode64 ? m_cur_links : nullptr;
        // Events, HLT, the budget and kicks are run()'s business.
        if (m_check_irq || m_s.halted || m_retired >= m_retire_limit || m_kick.load(std::memory_order_relaxed))
            return true;
        // What run() does before each block (it did it for the first one).
        block_hooks();
    }
}

void InterpreterImpl::next_block()
{
    // chain() calls this only when a near branch was taken and nothing else
    // ended the block: no state run_block() watches has changed (anything
    // that changes modes, paging, TF, the interrupt shadow or memory hooks,
    // or writes a code page, also sets a stop reason), so the successor can
    // start here if it is linked to this block and the budget allows.
    if (m_chain_left == 0)
        return;
    const uint64_t rip = m_s.rip;
    if ((rip >> 12) != m_fetch_vpage || m_fetch_epoch != m_tlb_epoch || m_fetch_user != (m_cpl == 3)) [[unlikely]]
        return;
    const uint64_t gpa = m_fetch_gpa | (rip & 0xfff);
    const uint32_t gen = page_generation(gpa);
    const BlockLinks& l = *m_cur_links;
    unsigned k;
    if (l.gpa[0] == gpa && l.generation[0] == gen)
        k = 0;
    else if (l.gpa[1] == gpa && l.generation[1] == gen)
        k = 1;
    else
        return;
    const unsigned done = unsigned(reinterpret_cast<const BlockInsn*>(m_insn) - m_cur_first) + 1;
    if (m_retired + done + l.count[k] > m_retire_limit || m_kick.load(std::memory_order_relaxed))
        return;
    m_retired += done;
    m_chain_left--;
    m_trace.note_block(rip);
    m_branch_taken = false;
    const uint32_t first = l.first[k];
    const BlockInsn* insns = &m_block_arena[first].insn;
    m_cur_first = insns;
    m_cur_links = &m_block_arena[first - 1].links;
    m_insn = &insns[0].d;
    m_next_rip = rip + insns[0].d.length; // 64-bit code: no wrap
    return insns[0].fn(*this, insns[0].d);
}

} // namespace kiln::accel::interp
