// InterpreterImpl: the interpreter's internals, shared by the exec_*.cpp
// files. Not part of the accel API; only accel/interp includes it.
//
// Guest exceptions raised while executing an instruction are thrown as
// CpuException and caught at the instruction boundary in run(): a fault can
// come from any depth (a page walk inside a string instruction inside a far
// call), and unwinding with the partially executed instruction's effects
// discarded is exactly the x86 fault semantics. Exceptions never leave
// InterpreterImpl::run().
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "accel/interp/decoder.h"
#include "accel/interp/interpreter.h"
#include "accel/interp/private/lazy_flags.h"
#include "accel/interp/private/trace.h"
#include "accel/vcpu_host.h"
#include "accel/x86/cpu_state.h"
#include "accel/x86/cpuid.h"

namespace kiln::accel::interp {

using x86::CpuState;
using x86::Seg;

// Exception vectors.
enum Vector : uint8_t {
    k_de = 0,
    k_db = 1,
    k_nmi = 2,
    k_bp = 3,
    k_of = 4,
    k_br = 5,
    k_ud = 6,
    k_nm = 7,
    k_df = 8,
    k_ts = 10,
    k_np = 11,
    k_ss = 12,
    k_gp = 13,
    k_pf = 14,
    k_mf = 16,
    k_ac = 17,
    k_mc = 18,
    k_xm = 19,
};

struct CpuException {
    uint8_t vector;
    bool has_error;
    uint32_t error;
};

// Raised when the current instruction must stop and run() must return
// (triple fault, unimplemented state) rather than deliver a guest event.
struct CpuExit {
    RunExit exit;
};

enum class Access : uint8_t { Read = 0, Write = 1, Fetch = 2 };

// Page-fault error code bits.
inline constexpr uint32_t k_pf_present = 1u << 0;
inline constexpr uint32_t k_pf_write = 1u << 1;
inline constexpr uint32_t k_pf_user = 1u << 2;
inline constexpr uint32_t k_pf_rsvd = 1u << 3;
inline constexpr uint32_t k_pf_fetch = 1u << 4;

inline constexpr uint64_t k_rflags_defined = 0x3f7fd5;
inline constexpr unsigned k_tlb_entries = 256;
inline constexpr unsigned k_decode_cache_entries = 1u << 16;

struct TlbEntry {
    uint64_t vpage = ~0ull; // linear address >> 12, ~0 when empty
    uint8_t* host = nullptr; // host address of the page, nullptr for MMIO
    uint64_t gpa = 0; // guest-physical page address
    bool global = false;
};

// The memory operand of the LOCKed instruction being executed (lock.cpp).
struct LockedAccess {
    bool active = false;
    bool dirty = false;
    uint8_t* host = nullptr; // host address of the operand
    uint64_t lin = 0;
    unsigned size = 0;
    uint8_t old[16] = {}; // bytes read
    uint8_t shadow[16] = {}; // bytes to publish
};

class InterpreterImpl;

// One instruction of a decoded block: its handler (chosen once, when the
// block is built: a specialised fast handler for common forms, otherwise
// the generic group dispatch) and its decoded form.
using ExecFn = void (*)(InterpreterImpl& cpu, const DecodedInsn& d);
struct BlockInsn {
    DecodedInsn d; // first: a handler finds its BlockInsn from `d`
    ExecFn fn;
};

inline constexpr unsigned k_block_max_insns = 64;
// Sized from a Linux boot: 8 Ki slots and 128 Ki instructions rebuilt a
// block every ~2,000 instructions, mostly after slot conflicts.
inline constexpr unsigned k_block_slot_bits = 15;
inline constexpr unsigned k_block_slots = 1u << k_block_slot_bits;
inline constexpr unsigned k_block_arena_insns = 1u << 18;

// A basic block: consecutive instructions of one guest-physical page,
// ending at the first control transfer (or the page end). Valid while the
// page's generation and the arena epoch are unchanged.
struct BlockSlot {
    uint64_t gpa = ~0ull;
    uint32_t generation = 0;
    uint32_t arena_epoch = 0;
    uint32_t first = 0; // index of the first instruction in the arena
    uint16_t count = 0;
    uint16_t bytes = 0; // total instruction length
    uint8_t code_size = 0xff;
};

// The last two successors seen after a block, so the next block is found
// without a slot lookup.
struct BlockLinks {
    uint64_t gpa[2] = { ~0ull, ~0ull };
    uint32_t generation[2] = {};
    uint32_t first[2] = {};
    uint16_t count[2] = {};
    uint8_t victim = 0;
};

// The arena holds, per block, its BlockLinks followed by its instructions.
union ArenaEntry {
    BlockInsn insn;
    BlockLinks links;
    ArenaEntry() : links() { }
};
// chain() steps from one BlockInsn to the next with BlockInsn arithmetic.
static_assert(sizeof(ArenaEntry) == sizeof(BlockInsn));

// Picks the handler for a decoded instruction (exec_fast.cpp): a
// specialised one for the hottest forms, or generic dispatch.
ExecFn select_handler(const DecodedInsn& d, CodeSize size);
ExecFn generic_handler();

struct DecodeCacheEntry {
    uint64_t gpa = ~0ull;
    uint32_t generation = 0;
    uint8_t code_size = 0xff;
    DecodedInsn insn;
};

class InterpreterImpl {
public:
    InterpreterImpl(VcpuHost& host, const x86::CpuModel& model);

    RunExit run(uint64_t max_instructions);
    void kick() { m_kick.store(true, std::memory_order_release); }
    void invalidate_code(uint64_t gpa, uint64_t len);
    void reset(x86::ResetKind kind);

    CpuState& state() { return m_s; }
    const x86::CpuModel& model() const { return m_model; }
    uint64_t instructions_retired() const { return m_retired; }

    // ---- Everything below is for the exec_*.cpp files. ----

    [[noreturn]] void raise(uint8_t vector) { throw CpuException { vector, false, 0 }; }
    [[noreturn]] void raise(uint8_t vector, uint32_t error) { throw CpuException { vector, true, error }; }
    [[noreturn]] void raise_gp0() { raise(k_gp, 0); }
    [[noreturn]] void raise_ud() { raise(k_ud); }

    // Registers.
    uint64_t reg(unsigned r, unsigned size) const
    {
        switch (size) {
        case 1:
            if (r >= 4 && r < 8 && !m_insn->rex)
                return (m_s.gpr[r - 4] >> 8) & 0xff; // AH, CH, DH, BH
            return m_s.gpr[r] & 0xff;
        case 2:
            return m_s.gpr[r] & 0xffff;
        case 4:
            return m_s.gpr[r] & 0xffffffff;
        default:
            return m_s.gpr[r];
        }
    }
    void set_reg(unsigned r, unsigned size, uint64_t v)
    {
        switch (size) {
        case 1:
            if (r >= 4 && r < 8 && !m_insn->rex)
                m_s.gpr[r - 4] = (m_s.gpr[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
            else
                m_s.gpr[r] = (m_s.gpr[r] & ~0xffull) | (v & 0xff);
            break;
        case 2:
            m_s.gpr[r] = (m_s.gpr[r] & ~0xffffull) | (v & 0xffff);
            break;
        case 4:
            m_s.gpr[r] = v & 0xffffffff;
            break;
        default:
            m_s.gpr[r] = v;
            break;
        }
    }

    // Flags.
    uint64_t flags() const { return m_flags.get(m_s.rflags); }
    // Replaces all of RFLAGS (callers apply the IOPL/CPL rules first).
    void set_flags(uint64_t f)
    {
        m_s.rflags = (f & k_rflags_defined) | x86::k_flag_fixed1;
        m_flags.clear();
        // TF, IF, VM... may have changed: blocks only check TF between blocks.
        m_block_end = true;
    }
    void set_arith_flags(uint64_t arith) { m_flags.set_eager(m_s.rflags, arith); }
    LazyFlags& lazy() { return m_flags; }
    [[gnu::always_inline]] bool cond(unsigned cc) const { return m_flags.cond(m_s.rflags, cc); }

    // Modes.
    bool mode64() const { return m_mode64; }
    CodeSize code_size() const { return m_code_size; }
    unsigned cpl() const { return m_cpl; }
    // Recomputes cached mode bits after CS, CR0, EFER or RFLAGS.VM changes.
    void update_mode();
    unsigned stack_size() const; // 2, 4 or 8: SS.B / 64-bit mode

    // Effective address of the current instruction's memory operand
    // (offset within its segment, already wrapped to the address size).
    uint64_t effective_address(const DecodedInsn& d) const
    {
        uint64_t ea = uint64_t(int64_t(d.disp));
        if (d.rip_relative)
            ea += m_next_rip;
        if (d.base != k_no_reg)
            ea += m_s.gpr[d.base];
        if (d.index != k_no_reg)
            ea += m_s.gpr[d.index] << d.scale;
        switch (d.addrsize) {
        case 2:
            return ea & 0xffff;
        case 4:
            return ea & 0xffffffff;
        default:
            return ea;
        }
    }
    Seg operand_seg(const DecodedInsn& d) const
    {
        if (d.seg != k_no_seg)
            return Seg(d.seg);
        return d.default_ss ? Seg::SS : Seg::DS;
    }

    // Segmented memory: offset -> linear (with limit/type checks) -> physical.
    uint64_t linear(Seg seg, uint64_t offset, unsigned size, Access access);
    // The common case is inline: 64-bit mode, a software-TLB hit on a RAM
    // page, the access inside the page. Everything else (segment checks,
    // canonical faults, misses, MMIO, code pages, page crossings) takes the
    // out-of-line path.
    uint64_t read_mem(Seg seg, uint64_t offset, unsigned size)
    {
        if (const uint8_t* p = direct_ptr(seg, offset, size, Access::Read)) [[likely]]
            return load_le(p, size);
        return read_mem_slow(seg, offset, size);
    }
    void write_mem(Seg seg, uint64_t offset, unsigned size, uint64_t value)
    {
        if (uint8_t* p = direct_ptr(seg, offset, size, Access::Write)) [[likely]]
            return store_le(p, size, value);
        write_mem_slow(seg, offset, size, value);
    }
    uint64_t read_mem_slow(Seg seg, uint64_t offset, unsigned size);
    void write_mem_slow(Seg seg, uint64_t offset, unsigned size, uint64_t value);
    // Host pointer for a `size`-byte access in 64-bit mode when the software
    // TLB maps the whole access directly (a write entry only exists for
    // writable RAM that holds no decoded code), else nullptr. Non-canonical
    // addresses never match a TLB entry, so they reach the checked path.
    uint8_t* direct_ptr(Seg seg, uint64_t offset, unsigned size, Access access) const
    {
        // LOCKed operands and armed data breakpoints take the checked path.
        if (!m_mode64 || m_mem_hooks) [[unlikely]]
            return nullptr;
        uint64_t lin = offset;
        if (seg == Seg::FS || seg == Seg::GS)
            lin += m_s.seg[static_cast<unsigned>(seg)].base;
        const TlbEntry& e = m_tlb[static_cast<unsigned>(access)][m_cpl == 3][(lin >> 12) % k_tlb_entries];
        if (e.vpage != (lin >> 12) || !e.host || (lin & 0xfff) + size > 4096) [[unlikely]]
            return nullptr;
        return e.host + (lin & 0xfff);
    }
    static uint64_t load_le(const uint8_t* p, unsigned size)
    {
        switch (size) {
        case 1:
            return *p;
        case 2: {
            uint16_t v;
            std::memcpy(&v, p, 2);
            return v;
        }
        case 4: {
            uint32_t v;
            std::memcpy(&v, p, 4);
            return v;
        }
        default: {
            uint64_t v;
            std::memcpy(&v, p, 8);
            return v;
        }
        }
    }
    static void store_le(uint8_t* p, unsigned size, uint64_t v)
    {
        switch (size) {
        case 1:
            *p = uint8_t(v);
            return;
        case 2: {
            uint16_t x = uint16_t(v);
            std::memcpy(p, &x, 2);
            return;
        }
        case 4: {
            uint32_t x = uint32_t(v);
            std::memcpy(p, &x, 4);
            return;
        }
        default:
            std::memcpy(p, &v, 8);
            return;
        }
    }
    // Linear addresses (descriptor tables, TSS, IDT): supervisor, no segmentation.
    uint64_t read_linear(uint64_t lin, unsigned size, bool supervisor = true);
    void write_linear(uint64_t lin, unsigned size, uint64_t value, bool supervisor = true);
    void read_linear_bytes(uint64_t lin, void* dst, unsigned len, bool user);
    void write_linear_bytes(uint64_t lin, const void* src, unsigned len, bool user);

    // Operand helpers for the current instruction.
    uint64_t read_rm(const DecodedInsn& d, unsigned size)
    {
        if (d.mod == 3)
            return reg(d.rm, size);
        return read_mem(operand_seg(d), effective_address(d), size);
    }
    void write_rm(const DecodedInsn& d, unsigned size, uint64_t v)
    {
        if (d.mod == 3)
            set_reg(d.rm, size, v);
        else
            write_mem(operand_seg(d), effective_address(d), size, v);
    }

    // Stack.
    void push(uint64_t v, unsigned size);
    uint64_t pop(unsigned size);
    uint64_t stack_pointer() const;
    void set_stack_pointer(uint64_t v);

    // Control transfer inside the current code segment.
    void jump_near(uint64_t target)
    {
        // 64-bit mode with a 64-bit operand size (every near branch but
        // 66-prefixed ones) inline; the rest in jump_near_slow().
        if (m_mode64 && m_insn->opsize != 2 && uint64_t(int64_t(target << 16) >> 16) == target) [[likely]] {
            m_next_rip = target;
            m_block_end = true;
            return;
        }
        jump_near_slow(target);
    }
    void jump_near_slow(uint64_t target);
    void end_block() { m_block_end = true; }

    // Segment loads (segments.cpp).
    void load_segment(Seg seg, uint16_t selector); // MOV/POP Sreg semantics, with checks
    void load_segment_real(Seg seg, uint16_t selector); // real/v8086: base = sel << 4
    void set_cs_for_transfer(uint16_t selector, uint64_t desc, unsigned new_cpl);
    uint64_t read_descriptor(uint16_t selector, uint8_t fault_vector); // raw 8 bytes, #GP/#TS on limit
    void write_descriptor_high(uint16_t selector, uint32_t high);
    x86::SegmentCache cache_from_descriptor(uint16_t selector, uint64_t desc) const;
    void far_jump(uint16_t selector, uint64_t offset, bool is_call, unsigned opsize, uint64_t next_rip);
    void far_return(unsigned opsize, uint16_t pop_bytes);

    // Interrupts and exceptions (interrupts.cpp).
    enum class EventKind { Exception, External, Software, Nmi, SoftwareException };
    void deliver(uint8_t vector, EventKind kind, bool has_error, uint32_t error, uint64_t return_rip);
    void iret(unsigned opsize);

    // Paging and TLB (paging.cpp).
    void flush_tlb(bool include_global);
    void flush_tlb_page(uint64_t lin);
    void write_cr0(uint64_t v);
    void write_cr3(uint64_t v);
    void write_cr4(uint64_t v);
    void write_efer(uint64_t v);

    // Port I/O with the IOPL / TSS I/O bitmap check.
    void check_io(uint16_t port, unsigned size);
    uint32_t io_read(uint16_t port, unsigned size);
    void io_write(uint16_t port, unsigned size, uint32_t v);

    uint64_t read_tsc();
    bool read_msr(uint32_t index, uint64_t& value);
    bool write_msr(uint32_t index, uint64_t value);

    // Instruction groups (exec_*.cpp). Each returns false if the opcode is
    // not one it handles (the caller raises #UD).
    bool exec_alu(const DecodedInsn& d);
    bool exec_control(const DecodedInsn& d);
    bool exec_string(const DecodedInsn& d);
    bool exec_system(const DecodedInsn& d);
    bool exec_bits(const DecodedInsn& d);
    bool exec_sse(const DecodedInsn& d);
    bool exec_x87(const DecodedInsn& d);
    bool exec_vex(const DecodedInsn& d); // VEX-encoded BMI1/BMI2 (exec_vex.cpp)
    // XSAVE family (exec_xsave.cpp): 0F AE /4-/6 and 0F C7 /4 with memory.
    bool exec_xsave(const DecodedInsn& d);
    bool exec_xsetbv();
    bool exec_xgetbv();

    VcpuHost& host() { return m_host; }
    uint64_t next_rip() const { return m_next_rip; }
    void set_next_rip(uint64_t rip) { m_next_rip = rip; }
    const DecodedInsn& insn() const { return *m_insn; }
    void request_irq_check() { m_check_irq = true; }
    void set_interrupt_shadow(uint8_t kind) { m_new_shadow = kind; }
    void halt();
    // Recomputes the armed breakpoints after DR7 changes.
    void update_debug_state();
    // Before each block: the block-address ring for triple-fault reports,
    // the memory-hook flags, and -d exec/cpu (m_trace_blocks, set by run()).
    void block_hooks()
    {
        m_trace.note_block(m_s.rip);
        update_mem_hooks();
        if (m_trace_blocks) [[unlikely]] {
            m_flags.materialize(m_s.rflags);
            m_trace.block(m_s);
        }
    }
    // #AC for a `size`-byte access when alignment checking is on (callers
    // that split wide accesses check the whole operand themselves).
    bool alignment_checking() const { return m_ac_check; }
    void check_alignment(Seg seg, uint64_t offset, unsigned size, Access access);
    // Recomputes m_mem_hooks: every change of CR0.AM, RFLAGS.AC or CPL ends
    // the block, and run() calls this before each block.
    void update_mem_hooks()
    {
        m_ac_check = (m_s.cr0 & x86::k_cr0_am) && (m_s.rflags & x86::k_flag_ac) && m_cpl == 3;
        m_mem_hooks = m_lock.active || m_dr_data || m_ac_check;
    }
    // Generic dispatch: LOCK validity, then the exec_* group for the opcode.
    void execute(const DecodedInsn& d);

    // Direct-threaded block execution: called by every block handler after
    // its instruction (`d` is the instruction's BlockInsn::d). Retires it and,
    // unless something ended the block, starts the next instruction with a
    // tail call. Without sibling-call optimisation the recursion is bounded
    // by k_block_max_insns.
    [[gnu::always_inline]] void chain(const DecodedInsn& d)
    {
        m_s.rip = m_next_rip;
        // Anything that changes what the rest of the block means (a taken
        // branch, a mode or paging change, a store into a code page, a
        // possible interrupt, an interrupt shadow, a flags reload that may
        // set TF: set_flags() ends the block) ends it.
        if ((m_block_end | m_check_irq | (m_new_shadow != 0)) || m_block_left == 0)
            return;
        m_block_left--;
        const BlockInsn* next = reinterpret_cast<const BlockInsn*>(&d) + 1;
        m_insn = &next->d;
        m_next_rip = (m_s.rip + next->d.length) & m_rip_mask;
        return next->fn(*this, next->d);
    }

private:
    void execute_one();
    bool run_block(uint64_t budget);
    BlockSlot* build_block(BlockSlot& slot, uint8_t* host, uint64_t gpa, uint32_t gen);
    void dispatch(const DecodedInsn& d);
    // LOCK-prefixed read-modify-write and XCHG with memory (lock.cpp).
    void execute_locked(const DecodedInsn& d);
    uint64_t locked_read(Seg seg, uint64_t offset, unsigned size);
    void locked_write(Seg seg, uint64_t offset, unsigned size, uint64_t value);
    // Memory accesses while a LOCKed instruction runs or data breakpoints
    // are armed (m_mem_hooks), debug-register breakpoints (debug_regs.cpp).
    uint64_t read_mem_hooked(Seg seg, uint64_t offset, unsigned size);
    void write_mem_hooked(Seg seg, uint64_t offset, unsigned size, uint64_t value);
    void debug_before(uint64_t rip);
    void debug_after();
    void check_data_breakpoints(uint64_t lin, unsigned size, bool write);
public:
    // Port I/O against the armed I/O breakpoints (debug_regs.cpp).
    void check_io_breakpoints(uint16_t port, unsigned size);
    bool io_breakpoints_armed() const { return m_dr_io != 0; }

private:
    const DecodedInsn& fetch_decode();
    bool check_events();
    void handle_exception(const CpuException& e, uint64_t fault_rip);
    bool page_walk(uint64_t lin, Access access, bool user, uint64_t& gpa, bool& global, bool& writable_ok);
    TlbEntry& tlb_fill(uint64_t lin, Access access, bool user);
    uint8_t* translate_fast(uint64_t lin, Access access, bool user, uint64_t& gpa);
    uint64_t phys_read(uint64_t gpa, unsigned size);
    void phys_write(uint64_t gpa, unsigned size, uint64_t v);
    void note_code_page(uint64_t gpa);
    void code_page_written(uint64_t gpa);
    uint32_t page_generation(uint64_t gpa) const
    {
        uint64_t page = gpa >> 12;
        return page < m_pages ? m_page_gen[page].load(std::memory_order_relaxed) : 0;
    }
    void fold_state();

    VcpuHost& m_host;
    hw::GuestMemory& m_mem;
    x86::CpuModel m_model;
    CpuState m_s;
    LazyFlags m_flags;

    // Cached mode bits (update_mode()).
    bool m_mode64 = false;
    CodeSize m_code_size = CodeSize::Bits16;
    unsigned m_cpl = 0;

    const DecodedInsn* m_insn = nullptr;
    DecodedInsn m_uncached; // decoded instruction that is not in the cache
    uint64_t m_next_rip = 0;
    bool m_block_end = false;
    bool m_check_irq = true;
    uint8_t m_new_shadow = 0;
    uint64_t m_retired = 0;
    std::atomic<bool> m_kick { false };
    TraceState m_trace; // -d in_asm/exec/cpu/int/cpu_reset
    LockedAccess m_lock;
    bool m_last_walk_user = false; // the last page walk ended on a user page (SMAP)
    bool m_mem_hooks = false; // m_lock.active || m_dr_data || m_ac_check
    bool m_ac_check = false; // alignment checks: CR0.AM, RFLAGS.AC, CPL 3
    bool m_trace_blocks = false; // -d exec or cpu
    bool m_debug_hooks = false; // m_dr_exec || m_dr_data
    bool m_rf_at_start = false;
    uint8_t m_dr_exec = 0; // enabled instruction breakpoints (bit per DRn)
    uint8_t m_dr_data = 0; // enabled data breakpoints
    uint8_t m_dr_io = 0; // enabled I/O breakpoints (RW = 10 with CR4.DE)
    uint8_t m_dr_hits = 0; // data breakpoints hit by the current instruction

    // [access][user]
    TlbEntry m_tlb[3][2][k_tlb_entries];
    // The code page instructions are being fetched from (saves a TLB
    // lookup per instruction); valid while m_tlb_epoch is unchanged.
    uint64_t m_tlb_epoch = 1;
    uint64_t m_fetch_vpage = ~0ull;
    uint64_t m_fetch_epoch = 0;
    bool m_fetch_user = false;
    uint8_t* m_fetch_host = nullptr;
    uint64_t m_fetch_gpa = 0;
    // Which exec_* group handles each opcode (0 = not learnt yet).
    uint8_t m_group[0x400] = {};
    std::vector<DecodeCacheEntry> m_decode_cache;
    // Per guest-physical page: generation (bumped when the page's code
    // changes) and whether any decoded instruction of it is cached.
    uint64_t m_pages = 0;
    std::unique_ptr<std::atomic<uint32_t>[]> m_page_gen;
    std::vector<uint8_t> m_page_has_code;
    // Decoded blocks: a direct-mapped table of slots, each pointing at a
    // run of instructions in an arena that is recycled whole when full.
    std::vector<BlockSlot> m_block_slots;
    std::vector<ArenaEntry> m_block_arena;
    uint32_t m_arena_used = 0;
    uint32_t m_arena_epoch = 1;
    unsigned m_block_left = 0; // instructions of the block after the current one
    uint64_t m_rip_mask = ~0ull; // IP/EIP/RIP wrap for the block's code size

    friend class Interpreter;
};

} // namespace kiln::accel::interp
