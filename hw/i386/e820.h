// The PC's physical memory map as the BIOS E820 call (and the Linux
// boot_params / PVH memmap) reports it: low RAM, the EBDA and BIOS area,
// RAM up to the PCI hole, the IOAPIC/LAPIC windows, RAM above 4 GiB.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::hw {

enum class E820Type : uint32_t { Ram = 1, Reserved = 2, Acpi = 3, Nvs = 4 };

struct E820Entry {
    uint64_t addr;
    uint64_t size;
    E820Type type;
};

// Where RAM stops below 4 GiB for a guest of ram_bytes (QEMU's i440FX
// rule: guests of 3.5 GiB or more keep 3 GiB low, smaller ones all of it).
uint64_t pc_low_ram_bytes(uint64_t ram_bytes);
// The start of the PCI hole for GuestMemory::create.
uint64_t pc_pci_hole_start(uint64_t ram_bytes);

std::vector<E820Entry> build_pc_e820(uint64_t ram_bytes);

} // namespace kiln::hw
