// Vcpu: the one shape the board drives, whichever accelerator runs the CPU
// (the interpreter or KVM). The board creates one per vCPU thread, calls
// run() in a loop, and reacts to why it returned; other threads only call
// kick() and wake().
#pragma once

#include "accel/x86/cpu_state.h"
#include "util/result.h"

namespace kiln::accel {

enum class VcpuExit {
    Kicked, // kick() was called (the request is consumed)
    Stopped, // HLT, and VcpuHost::wait_for_interrupt() said to stop
    Reset, // triple fault or CPU-side reset: VcpuHost::request_reset() was called
};

const char* vcpu_exit_name(VcpuExit exit);

class Vcpu {
public:
    virtual ~Vcpu() = default;

    // The architectural state, valid and freely writable while run() is not
    // executing; changes take effect when run() next starts.
    virtual x86::CpuState& state() = 0;

    // Power-on or INIT reset (the board calls it on system reset).
    virtual void reset(x86::ResetKind kind) = 0;

    // Runs the guest until a kick, a stop from HLT or a reset. An error
    // means the accelerator could not go on (KVM internal error, failed
    // entry, an interpreter bug): the message names the cause and the CPU's
    // registers; the VM should be stopped, never resumed blindly.
    virtual Result<VcpuExit> run() = 0;

    // Thread-safe: makes run() return VcpuExit::Kicked promptly.
    virtual void kick() = 0;
    // Thread-safe: an interrupt or NMI became pending in the host; run()
    // re-evaluates it promptly without returning.
    virtual void wake() = 0;
};

} // namespace kiln::accel
