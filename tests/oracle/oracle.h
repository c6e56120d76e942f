// The differential oracle: run an instruction sequence natively on the host
// CPU (user mode, in a forked child with the test pages at fixed addresses)
// and in Kiln's interpreter (64-bit user mode, flat segments, the same pages
// identity-mapped), from the same registers, flags, XMM state and memory;
// compare what comes out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel/x86/cpu_state.h"
#include "util/result.h"

namespace kiln::oracle {

inline constexpr uint64_t k_code_addr = 0x400000;
inline constexpr uint64_t k_data_addr = 0x500000;
inline constexpr uint64_t k_stack_addr = 0x600000;
inline constexpr unsigned k_data_bytes = 8192;
inline constexpr unsigned k_stack_bytes = 4096;
inline constexpr unsigned k_max_code_bytes = 256;

struct OracleState {
    uint64_t gpr[16] = {};
    uint64_t rflags = 0x202;
    accel::x86::Vec128 xmm[16] = {};
    uint32_t mxcsr = 0x1f80;
    accel::x86::Vec128 st[8] = {}; // x87 ST(0)..ST(7), 80-bit values
    uint16_t fcw = 0x37f;
    uint16_t fsw = 0;
    uint8_t ftw = 0; // abridged tag word
    uint8_t data[k_data_bytes] = {};
    uint8_t stack[k_stack_bytes] = {};
};

struct OracleCase {
    std::string name; // instruction form, for failure messages
    std::vector<uint8_t> code;
    OracleState in;
    uint64_t undefined_flags = 0; // RFLAGS bits the SDM leaves undefined for this case
    bool compare_xmm = false;
    bool compare_x87 = false;
    // 32-bit code in compatibility mode (natively: Linux's 32-bit user CS);
    // only the low halves of EAX..EDI are compared (the SDM leaves the rest
    // undefined across mode switches).
    bool mode32 = false;
    // 16-bit protected-mode code (natively: LDT segments from modify_ldt):
    // CS based at the code page, DS/ES at the data area (limit 8 KiB).
    bool mode16 = false;
    // Interpreter side: run the whole sequence with one large budget (as
    // decoded blocks, the way a guest runs) up to the UD2 placed after it,
    // instead of one instruction per run() call. Only for sequences that
    // do not fault.
    bool whole_blocks = false;
};

// Fault classes that both sides can observe the same way.
enum class Fault : int8_t {
    None = -1,
    DivideError = 0,
    Breakpoint = 3,
    InvalidOpcode = 6,
    Protection = 13,
    AlignmentCheck = 17, // #AC natively: SIGBUS (Linux runs user code with CR0.AM set)
};

struct OracleOutcome {
    Fault fault = Fault::None;
    OracleState out;
};

// Runs every case natively in one forked child.
Result<std::vector<OracleOutcome>> run_native(const std::vector<OracleCase>& cases);
// How the interpreter runs the cases: one instruction per run() call with
// the JIT off, or (Jit) with every block compiled on its first execution
// and each case run in one go, so the JIT tier executes it.
enum class InterpMode { Step, Jit };
// Runs every case in the interpreter.
Result<std::vector<OracleOutcome>> run_interpreter(
    const std::vector<OracleCase>& cases, InterpMode mode = InterpMode::Step);

// Empty if equal, otherwise a description of the first differences.
std::string compare(const OracleCase& c, const OracleOutcome& native, const OracleOutcome& interp);

// Runs `cases` natively and in the interpreter (in batches, to bound
// memory) and compares them: counts, and the first `max_reported`
// mismatches as "name [code bytes]: differences".
struct OracleReport {
    size_t native_faults = 0;
    size_t mismatches = 0;
    std::vector<std::string> reported;
};
Result<OracleReport> run_differential(
    const std::vector<OracleCase>& cases, size_t max_reported, InterpMode mode = InterpMode::Step);

} // namespace kiln::oracle
