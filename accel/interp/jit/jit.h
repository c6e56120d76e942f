// Jit: the tier above the block interpreter. A decoded block (block_exec.cpp)
// that has run `threshold` times is compiled into host x86-64 code: the hot
// instruction forms inline, every other instruction a call to its existing
// handler through a thunk (so any block compiles and behaves exactly as
// interpreted). Compiled code lives as long as the block does: the block's
// BlockLinks (reset whenever the block is rebuilt: page generation change,
// arena recycling) holds its offset in the code buffer, tagged with the
// buffer's epoch (bumped when the buffer is emptied).
//
// C++ exceptions never unwind through generated code: each call out of it
// goes through a thunk that catches CpuException (and anything else),
// records it here and returns a status; run() rethrows it in C++ once the
// generated code has returned, with RIP at the faulting instruction and the
// instructions before it retired, as in the block path.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include "accel/interp/jit/code_buffer.h"
#include "accel/interp/jit/compiler.h"
#include "accel/interp/private/cpu.h"
#include "util/result.h"

namespace kiln::accel::interp::jit {

class Jit {
public:
    static Result<std::unique_ptr<Jit>> create(InterpreterImpl& cpu, const JitOptions& options);

    // Runs the `count`-instruction block at arena index `first` (the one at
    // cpu.m_s.rip) as host code when it is compiled or has just become hot
    // and the budget holds the whole block. Returns false, having changed
    // nothing, when the interpreter must run it. Otherwise the block ran:
    // cpu.m_insn is the last instruction started (as after chained
    // handlers), and a guest exception is rethrown here. A block that
    // branches back to its own start may run several times in one call:
    // those passes are retired here and taken off `budget`.
    bool run(InterpreterImpl& cpu, uint32_t first, unsigned count, uint64_t& budget);

    ~Jit();
    uint64_t blocks_compiled() const { return m_compiled; }
    uint64_t flushes() const { return m_flushes; }

private:
    using BlockFn
        = uint64_t (*)(InterpreterImpl* cpu, const TlbEntry* read_tlb, const TlbEntry* write_tlb, uint64_t budget);

    // Cells for exits to a known RIP: about two per block the buffer holds.
    static constexpr size_t k_chain_cells = 1u << 18;
    explicit Jit(const JitOptions& options)
        : m_options(options)
        , m_cells(k_chain_cells)
    {
    }
    static Layout layout_of(InterpreterImpl& cpu);
    const uint8_t* compile(InterpreterImpl& cpu, const BlockInsn* insns, unsigned count);

    // Thunks called from generated code (see the comment at the top).
    static uint64_t call_handler(InterpreterImpl* cpu, ExecFn fn, const DecodedInsn* d);
    static void materialize_flags(InterpreterImpl* cpu);

    JitOptions m_options;
    Layout m_layout;
    CodeBuffer m_code;
    uint16_t m_code_epoch = 1; // BlockLinks::jit_epoch of code in the buffer
    ChainCells m_cells; // emptied with the buffer
    const ChainCell* m_exit_cell = nullptr; // written by generated code: the cell it last left through
    uint64_t m_compiled = 0;
    uint64_t m_flushes = 0;
    CpuException m_exception {};
    std::exception_ptr m_pending;
    std::unique_ptr<CompileStats> m_stats; // KILN_JIT_DEBUG
    FILE* m_perf_map = nullptr; // KILN_JIT_PERFMAP: /tmp/perf-PID.map for perf report
};

} // namespace kiln::accel::interp::jit
