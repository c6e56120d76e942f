// Human text for HMP's structure dumps, in QEMU's exact layout:
// `info registers` (x86_cpu_dump_state), `info mtree`, `info qtree`,
// `info pci` class names.
#pragma once

#include <string>
#include <vector>

#include "monitor/machine_control.h"

namespace kiln::monitor {

std::string format_cpu_registers(const CpuRegisters& regs);
std::string format_memory_tree(const std::vector<MemoryTreeSection>& sections);
std::string format_device_tree(const QtreeBus& root);
// QEMU's PCI class description for base<<8|sub, or null if it has none.
const char* pci_class_description(uint16_t class_code);

// printf into a std::string.
std::string strprintf(const char* format, ...) __attribute__((format(printf, 1, 2)));

} // namespace kiln::monitor
