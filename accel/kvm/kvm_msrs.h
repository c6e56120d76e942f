// The MSRs Kiln moves between x86::CpuState and KVM (KVM_GET/SET_MSRS).
// FS/GS base, EFER and APIC base travel in kvm_sregs instead; the TSC is
// special (CpuState keeps an offset from the virtual clock) and is
// converted by the vCPU, which knows the clock.
#pragma once

#include <cstdint>
#include <vector>

#include "accel/kvm/kvm_cpuid.h"
#include "accel/x86/cpu_state.h"

namespace kiln::accel::kvm {

inline constexpr uint32_t k_msr_tsc = 0x10;
inline constexpr uint32_t k_msr_kvm_system_time_new = 0x4b564d01;

// Every MSR the CPU model makes architecturally visible and CpuState has a
// place for (kvmclock only if the model advertises it), TSC included.
std::vector<uint32_t> candidate_msrs(const KvmCpuModel& model);

// Where CpuState keeps `index`; nullptr for the TSC and unknown MSRs.
uint64_t* msr_field(x86::CpuState& s, uint32_t index);
const char* msr_name(uint32_t index);

} // namespace kiln::accel::kvm
