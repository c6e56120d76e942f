// Text dump of a CpuState in the layout QEMU's `-d cpu` / `info registers`
// use for x86 (64-bit layout once EFER.LMA is set, 32-bit before), so logs
// of the two emulators can be diffed line by line.
#pragma once

#include <string>

#include "accel/x86/cpu_state.h"

namespace kiln::accel::x86 {

// Registers, segments with their descriptor caches, descriptor tables,
// control and debug registers, EFER; every line ends in '\n'.
std::string format_cpu_state(const CpuState& s);

// One segment line ("CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0
// CS64 [-RA]"), without the newline.
std::string format_segment(const char* name, const SegmentCache& seg, const CpuState& s);

} // namespace kiln::accel::x86
