// Applies the loader's BootCpuSetup (long mode or flat 32-bit protected
// mode, entry, boot_params / start_info register) to a vCPU's
// architectural state, as firmware would leave it before jumping to Linux.
#pragma once

#include "accel/x86/cpu_state.h"
#include "hw/i386/linux_boot.h"

namespace kiln::system {

void apply_boot_setup(const hw::BootCpuSetup& setup, accel::x86::CpuState& cpu);

} // namespace kiln::system
