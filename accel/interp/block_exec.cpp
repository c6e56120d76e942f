// Block execution: the common path of run(). Instructions are decoded a
// basic block at a time into an arena, each with its handler chosen once,
// and a block runs without per-instruction fetch, TLB or decode-cache
// lookups. Anything unusual (single-step, an interrupt shadow, code in
// MMIO, an instruction crossing a page, a fault on fetch) falls back to
// execute_one(), which handles every case one instruction at a time.
#include "accel/interp/private/cpu.h"
#include "util/log.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

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

} // namespace

BlockSlot* InterpreterImpl::find_block(uint8_t* host, uint64_t gpa)
{
    BlockSlot& s = m_block_slots[(gpa * 0x9e3779b97f4a7c15ull) >> (64 - k_block_slot_bits)];
    const uint32_t gen = page_generation(gpa);
    const uint8_t cs_tag = static_cast<uint8_t>(m_code_size);
    if (s.gpa == gpa && s.generation == gen && s.arena_epoch == m_arena_epoch && s.code_size == cs_tag) [[likely]]
        return &s;
    if (m_arena_used + k_block_max_insns > k_block_arena_insns) {
        // Recycle the whole arena: every slot built before is stale now.
        m_arena_used = 0;
        m_arena_epoch++;
    }
    unsigned off = unsigned(gpa & 0xfff);
    unsigned count = 0, bytes = 0;
    // -d in_asm: each instruction as its block is built (the block starts at RIP).
    const bool trace = Log::enabled(LogCategory::InAsm);
    const uint64_t lin0 = m_mode64 ? m_s.rip : (m_s.segment(Seg::CS).base + m_s.rip) & 0xffffffff;
    BlockInsn* out = &m_block_arena[m_arena_used];
    while (count < k_block_max_insns && off < 4096) {
        BlockInsn& x = out[count];
        // Never reads past the page; an instruction that crosses it (or
        // does not decode) is left to execute_one().
        if (decode(host + off, 4096 - off, m_code_size, x.d) != DecodeStatus::Ok)
            break;
        x.fn = select_handler(x.d, m_code_size);
        if (trace) [[unlikely]]
            m_trace.in_asm(lin0 + bytes, host + off, x.d.length, m_code_size);
        count++;
        bytes += x.d.length;
        off += x.d.length;
        if (ends_block(x.d))
            break;
    }
    if (count == 0) {
        s.gpa = ~0ull;
        return nullptr;
    }
    // Stores into this page must now invalidate (and end the block).
    note_code_page(gpa);
    s.gpa = gpa;
    s.generation = gen;
    s.arena_epoch = m_arena_epoch;
    s.first = m_arena_used;
    s.count = uint16_t(count);
    s.bytes = uint16_t(bytes);
    s.code_size = cs_tag;
    m_arena_used += count;
    return &s;
}

bool InterpreterImpl::run_block(uint64_t budget)
{
    // Single-step, an interrupt shadow and armed debug registers need the
    // per-instruction checks of execute_one().
    if ((m_s.rflags & k_flag_tf) || m_s.events.interrupt_shadow || m_debug_hooks) [[unlikely]]
        return false;
    const uint64_t rip = m_s.rip;
    uint64_t lin;
    uint64_t rip_mask = ~0ull;
    if (m_mode64) {
        lin = rip;
    } else {
        const SegmentCache& cs = m_s.segment(Seg::CS);
        if (rip > cs.limit)
            return false;
        lin = (cs.base + rip) & 0xffffffff;
        rip_mask = m_code_size == CodeSize::Bits16 ? 0xffff : 0xffffffff;
    }
    const bool user = m_cpl == 3;
    uint8_t* page;
    uint64_t page_gpa;
    if ((lin >> 12) == m_fetch_vpage && m_fetch_epoch == m_tlb_epoch && m_fetch_user == user) [[likely]] {
        page = m_fetch_host;
        page_gpa = m_fetch_gpa;
    } else {
        uint64_t gpa;
        uint8_t* p;
        try {
            p = translate_fast(lin, Access::Fetch, user, gpa);
        } catch (const CpuException&) {
            return false; // execute_one() raises the fault properly
        }
        if (!p)
            return false; // code in MMIO
        m_fetch_vpage = lin >> 12;
        m_fetch_epoch = m_tlb_epoch;
        m_fetch_user = user;
        m_fetch_host = p - (lin & 0xfff);
        m_fetch_gpa = gpa & ~0xfffull;
        page = m_fetch_host;
        page_gpa = m_fetch_gpa;
    }
    BlockSlot* b = find_block(page, page_gpa | (lin & 0xfff));
    if (!b)
        return false;
    if (!m_mode64) {
        // The whole block must lie inside CS and not wrap IP/EIP.
        uint64_t last = rip + b->bytes - 1;
        if (last > m_s.segment(Seg::CS).limit || last > rip_mask)
            return false;
    }
    const BlockInsn* insns = &m_block_arena[b->first];
    const unsigned n = budget < b->count ? unsigned(budget) : b->count;
    m_block_end = false;
    // Only an instruction that sets a shadow changes this; it ends the block.
    m_new_shadow = 0;
    unsigned i = 0;
    uint64_t cur_rip = rip;
    try {
        for (;;) {
            const BlockInsn& x = insns[i];
            m_insn = &x.d;
            m_next_rip = (cur_rip + x.d.length) & rip_mask;
            x.fn(*this, x.d);
            cur_rip = m_next_rip;
            m_s.rip = cur_rip;
            i++;
            // Anything that changes what the rest of the block means
            // (a taken branch, a mode or paging change, a store into a code
            // page, a possible interrupt, TF, an interrupt shadow) ends it.
            if ((m_block_end | m_check_irq | (m_new_shadow != 0)) || (m_s.rflags & k_flag_tf)) [[unlikely]] {
                m_s.events.interrupt_shadow = m_new_shadow;
                break;
            }
            if (i == n)
                break;
        }
    } catch (const CpuException& e) {
        // i counts the instructions that retired before the faulting one.
        m_retired += i;
        m_s.events.interrupt_shadow = 0;
        m_s.rip = cur_rip;
        handle_exception(e, cur_rip);
        m_block_end = true;
        return true;
    }
    m_retired += i;
    return true;
}

} // namespace kiln::accel::interp
