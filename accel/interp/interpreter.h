// Interpreter: Kiln's x86-64 CPU emulator for one vCPU.
//
// It works on an x86::CpuState and reaches the machine only through a
// VcpuHost (RAM through host().memory(), everything else through the host's
// pio/mmio/interrupt calls). One Interpreter per vCPU thread; only kick()
// and invalidate_code() may be called from other threads.
#pragma once

#include <cstdint>
#include <memory>

#include "accel/vcpu_host.h"
#include "accel/x86/cpu_state.h"
#include "accel/x86/cpuid.h"
#include "util/result.h"

namespace kiln::accel::interp {

enum class RunExit {
    Budget, // executed max_instructions
    Kicked, // kick() was called (the flag is consumed)
    Stopped, // HLT and host->wait_for_interrupt() returned false
    Reset, // triple fault or CPU-side reset: host->request_reset() was called
    InternalError, // the interpreter hit a state it cannot handle (logged)
};

const char* run_exit_name(RunExit exit);

class InterpreterImpl;

// It is also a RamWriteObserver: a board with one vCPU can hand it to
// GuestMemory::set_write_observer() directly (with several, fan out).
class Interpreter : public hw::RamWriteObserver {
public:
    // The CPU starts in the power-on reset state for `model`.
    static Result<std::unique_ptr<Interpreter>> create(VcpuHost& host, const x86::CpuModel& model);
    ~Interpreter() override;
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;

    // The architectural state. Valid, and freely writable, while run() is
    // not executing (the interpreter folds its lazy flags into it before
    // run() returns and re-reads all of it when run() starts).
    x86::CpuState& state();
    const x86::CpuModel& model() const;

    // Power-on or INIT reset (the board calls it on system reset).
    void reset(x86::ResetKind kind);

    // Runs until a kick, a stop from HLT, a reset, or `max_instructions`
    // instructions (HLT waits count as one). Events (interrupts, kicks) are
    // checked between blocks of instructions, not after every one.
    RunExit run(uint64_t max_instructions);

    // Thread-safe: makes run() return RunExit::Kicked soon (at the next
    // block boundary, or at once if it is in HLT and the host wakes it).
    void kick();

    // Thread-safe: guest-physical [gpa, gpa+len) changed behind the CPU's
    // back (DMA, loadvm); cached decoded instructions for it are dropped.
    // The board forwards GuestMemory's RamWriteObserver calls here.
    void invalidate_code(uint64_t gpa, uint64_t len);
    void ram_written(uint64_t gpa, uint64_t len) override { invalidate_code(gpa, len); }

    // Total instructions retired since creation (for tests and -icount-ish stats).
    uint64_t instructions_retired() const;

    // The JIT tier (accel/interp/jit/): blocks that ran `threshold` times
    // (0: the default) run as host code. On by default; `-accel
    // interp,jit=off` turns it off. Call while run() is not executing.
    Result<void> set_jit(bool enabled, unsigned threshold = 0);
    bool jit_enabled() const;
    // Blocks compiled so far (for tests and statistics).
    uint64_t jit_blocks_compiled() const;

private:
    explicit Interpreter(std::unique_ptr<InterpreterImpl> impl);
    std::unique_ptr<InterpreterImpl> m_impl;
};

} // namespace kiln::accel::interp
