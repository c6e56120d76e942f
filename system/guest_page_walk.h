// Guest-virtual to guest-physical translation for the monitor (`x`,
// `memsave`, `x /i`): walks the page tables the CPU state points at, as
// the MMU would for a supervisor read, without touching accessed bits.
#pragma once

#include <cstdint>

#include "accel/x86/cpu_state.h"
#include "hw/core/guest_memory.h"
#include "util/result.h"

namespace kiln::system {

// The physical address `va` maps to, or an error naming the unmapped
// address. Without paging the address is used as is (a linear address).
Result<uint64_t> translate_guest_virtual(const hw::GuestMemory& memory, const accel::x86::CpuState& cpu, uint64_t va);

} // namespace kiln::system
