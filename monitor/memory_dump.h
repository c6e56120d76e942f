// x / xp: QEMU's memory_dump (formats o x u d c in units of 1, 2, 4, 8
// bytes; i disassembles with capstone in AT&T syntax, as QEMU does).
#pragma once

#include <cstdint>
#include <string>

#include "monitor/machine_control.h"

namespace kiln::monitor {

struct DumpRequest {
    AddressKind kind = AddressKind::Virtual;
    int64_t cpu_index = 0;
    uint64_t address = 0;
    int64_t count = 1;
    char format = 'x'; // o x u d c i
    int size = 4; // 1 2 4 8 (ignored for i)
};

// A reply is built in memory before it is sent, so one dump is capped
// (QEMU streams it): past this much text it ends with a truncation line.
constexpr size_t k_max_dump_text_bytes = 4 << 20;
constexpr const char* k_dump_truncated_line = "(output truncated at 4 MiB)\n";

std::string format_memory_dump(MachineControl& machine, const DumpRequest& request);

// Disassembles `count` instructions at `address` in `mode_bits` (16, 32,
// 64) as QEMU's monitor prints them. Bytes come from `read`.
std::string disassemble(
    MachineControl& machine, AddressKind kind, int64_t cpu_index, uint64_t address, int64_t count, int mode_bits);

// The code size the CPU is executing in: 64 (long mode, CS.L), 32 (CS.D)
// or 16.
int cpu_code_bits(const CpuRegisters& regs);

} // namespace kiln::monitor
