// Vcpu: the one vCPU, run by the chosen accelerator. The interpreter is
// the only accelerator wired in today; -accel kvm reports that it is not
// available in this build (accel/kvm is a separate piece of work).
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
    virtual void kick() = 0; // thread-safe
    virtual const char* accel_name() const = 0;
};

// Creates a vCPU with the first accelerator in cfg.accels that works.
Result<std::unique_ptr<Vcpu>> create_vcpu(const MachineConfig& cfg, hw::PcMachine& machine);

} // namespace kiln::system
