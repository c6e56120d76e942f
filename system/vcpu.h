// Vcpu: the one vCPU, run by the chosen accelerator: Kiln's interpreter
// or KVM (with Kiln's own userspace interrupt controllers, through the
// board's VcpuHost).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "accel/x86/cpu_state.h"
#include "hw/i386/pc.h"
#include "system/machine_config.h"
#include "util/result.h"

namespace kiln::system {

enum class VcpuExit { Budget, Kicked, Stopped, Reset, Error };

class Vcpu {
public:
    virtual ~Vcpu() = default;
    virtual accel::x86::CpuState& state() = 0;
    virtual void power_on_reset() = 0;
    virtual VcpuExit run(uint64_t max_instructions) = 0;
    virtual void kick() = 0; // thread-safe: run() returns soon
    // Thread-safe: an interrupt became pending; the accelerator re-checks
    // VcpuHost::interrupt_pending() promptly (KVM without leaving run()).
    virtual void wake() = 0;
    virtual const char* accel_name() const = 0;
};

// -name debug-threads=on: names the calling thread as QEMU names vCPU
// threads ("CPU 0/KVM", "CPU 0/INTERP").
void name_vcpu_thread(const Vcpu& vcpu, unsigned index);

// Creates a vCPU with the first accelerator in cfg.accels that works.
Result<std::unique_ptr<Vcpu>> create_vcpu(const MachineConfig& cfg, hw::PcMachine& machine);

} // namespace kiln::system
