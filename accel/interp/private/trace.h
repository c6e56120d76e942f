// -d tracing for the interpreter, in QEMU's formats: in_asm (guest code as
// it is decoded, disassembled by capstone in AT&T syntax when Kiln is built
// with it), exec (one line per block), cpu (register dump before each
// block), int (each exception or interrupt delivered), cpu_reset. Callers
// check Log::enabled() first, so a disabled category costs one load.
#pragma once

#include <cstddef>
#include <cstdint>

#include "accel/interp/decoder.h"
#include "accel/x86/cpu_state.h"

namespace kiln::accel::interp {

// Per-vCPU tracing state (capstone handles are opened on first use). The
// vCPU is named by its APIC ID, as QEMU names it by its index.
class TraceState {
public:
    TraceState() = default;
    TraceState(const TraceState&) = delete;
    TraceState& operator=(const TraceState&) = delete;
    ~TraceState();

    // One newly decoded instruction at linear address `pc`; a new "IN:"
    // group starts whenever it does not follow the previous one.
    void in_asm(uint64_t pc, const uint8_t* bytes, unsigned len, CodeSize size);
    // Before a block runs: "Trace" line (exec) and/or register dump (cpu).
    void block(const x86::CpuState& s);
    // An event about to be delivered. `software` is INT n/INT3/INTO;
    // `next_rip` is the RIP pushed (faulting or following instruction).
    void event(const x86::CpuState& s, uint8_t vector, bool software, bool external, bool has_error,
        uint32_t error, uint64_t next_rip);
    void reset(const x86::CpuState& s);
    // Logs "Triple fault", the most recent block addresses and the state.
    void triple_fault(const x86::CpuState& s);
    // Remembers where a block starts (a ring of the last k_recent_blocks),
    // so a triple fault report shows how the CPU got there.
    void note_block(uint64_t pc) { m_recent[m_recent_pos++ % k_recent_blocks] = pc; }

    static constexpr unsigned k_recent_blocks = 32;

private:
    uint64_t m_in_asm_next = ~0ull;
    uint64_t m_recent[k_recent_blocks] = {};
    uint64_t m_recent_pos = 0;
    uint64_t m_event_count = 0;
    size_t m_capstone[3] = {};
    bool m_capstone_open[3] = {};
};

} // namespace kiln::accel::interp
