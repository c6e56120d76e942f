// Compiler: one decoded 64-bit block -> host x86-64 code (see jit.h for the
// contract and README.md for the code's shape). Pure: it reads the block
// and the field offsets it is given and produces bytes; it knows nothing of
// the code buffer or of when blocks are hot.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp::jit {

// Runs before a block's host code takes over: blocks below this count run
// in the interpreter (cheap to build, most run only a few times).
inline constexpr unsigned k_default_threshold = 32;
inline constexpr size_t k_default_code_bytes = 32u << 20;

struct JitOptions {
    bool enabled = true;
    unsigned threshold = k_default_threshold;
    size_t code_bytes = k_default_code_bytes;
};

// Offsets from the InterpreterImpl pointer of every field generated code
// touches (taken from a live object, see Jit::layout_of()).
struct Layout {
    int32_t gpr = 0; // CpuState::gpr[0]
    int32_t rip = 0;
    int32_t rflags = 0;
    int32_t fs_base = 0;
    int32_t gs_base = 0;
    int32_t next_rip = 0;
    int32_t insn = 0; // const DecodedInsn* m_insn
    int32_t block_end = 0;
    int32_t check_irq = 0;
    int32_t new_shadow = 0;
    int32_t kick = 0; // std::atomic<bool> m_kick
    int32_t tlb_epoch = 0; // uint64_t
    int32_t arena_epoch = 0; // uint32_t
    // The byte that says a lazy-flags record is pending (0: none, so RFLAGS
    // holds the arithmetic flags), or -1 if it could not be found: then
    // instructions that set flags are not inlined.
    int32_t flags_op = -1;
};

struct Thunks {
    const void* call_handler; // uint64_t (InterpreterImpl*, ExecFn, const DecodedInsn*): nonzero on a fault
    const void* materialize_flags; // void (InterpreterImpl*): folds pending lazy flags into RFLAGS
};

// The return value of generated code: instructions completed (in its last
// pass through the block) in the low 32 bits, k_exit_fault set when the
// next one raised (the thunk recorded it), and from bit k_loops_shift what
// was left of the budget it was given (the 4th argument) after the passes
// through blocks before the last one (self-loops, chained blocks).
inline constexpr uint64_t k_exit_fault = 1ull << 32;
inline constexpr unsigned k_loops_shift = 33;

// A block whose taken branch goes back to its own start runs again without
// leaving the code while another full pass fits in the budget, no kick is
// pending and its page's generation (at `generation_addr`) is still
// `generation` (DMA, other vCPUs' stores).
struct SelfLoop {
    const void* generation_addr = nullptr; // nullptr: never loop
    uint32_t generation = 0;
};

// Block chaining: each exit of compiled code to a known RIP has a cell; once
// Jit::run has seen that exit lead to a compiled block, the cell holds that
// block's code and what made the pair valid (the CPL's TLB row, the TLB
// epoch for the translation of its RIP, the arena epoch for its decoded
// instructions, its page's generation). The exit jumps straight there when
// all of it still holds, no kick is pending and the budget takes the whole
// next block; otherwise it records the cell (`exit_cell`) and returns.
struct ChainCell {
    const uint8_t* body = nullptr; // the successor's code past its prologue; null: not linked
    const void* read_tlb = nullptr;
    uint64_t tlb_epoch = 0;
    const void* generation_addr = nullptr;
    uint32_t generation = 0;
    uint32_t arena_epoch = 0;
    uint32_t count = 0; // the successor's instructions
    uint64_t target = 0; // the RIP this exit leaves for (a return's: the last one linked)
    bool dynamic = false; // a return: the target is compared at run time
};

class ChainCells {
public:
    explicit ChainCells(size_t capacity)
        : m_cells(new ChainCell[capacity])
        , m_capacity(capacity)
    {
    }
    ChainCell* take(uint64_t target)
    {
        if (m_used == m_capacity)
            return nullptr;
        ChainCell* c = &m_cells[m_used++];
        *c = ChainCell {};
        c->target = target;
        return c;
    }
    void reset() { m_used = 0; }

private:
    std::unique_ptr<ChainCell[]> m_cells;
    size_t m_capacity;
    size_t m_used = 0;
};

// Where each block's code starts past its prologue (chained jumps enter there).
inline constexpr uint32_t k_body_offset = 20;

struct Chaining {
    ChainCells* cells = nullptr; // nullptr: no chaining
    const ChainCell** exit_cell = nullptr;
};

// What the compiled blocks are made of (KILN_JIT_DEBUG prints it).
struct CompileStats {
    uint64_t inline_insns = 0;
    uint64_t handler_insns = 0;
    uint64_t handler_ops[0x400] = {}; // by DecodedInsn::op
};

// Host code for `count` instructions starting at linear `rip`; the entry
// point is at offset 0. Signature: uint64_t (InterpreterImpl*, const
// TlbEntry* read_tlb, const TlbEntry* write_tlb, uint64_t budget)
// with the CPL's TLB rows.
std::vector<uint8_t> compile_block(const Layout& layout, const Thunks& thunks, const BlockInsn* insns, unsigned count,
    uint64_t rip, const SelfLoop& loop, const Chaining& chaining, CompileStats* stats = nullptr);

} // namespace kiln::accel::interp::jit
