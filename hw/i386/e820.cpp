#include "hw/i386/e820.h"

namespace kiln::hw {

namespace {
constexpr uint64_t k_4g = 1ull << 32;
constexpr uint64_t k_split_threshold = 0xe0000000;
constexpr uint64_t k_low_split = 0xc0000000;
} // namespace

uint64_t pc_pci_hole_start(uint64_t ram_bytes)
{
    return ram_bytes >= k_split_threshold ? k_low_split : k_split_threshold;
}

uint64_t pc_low_ram_bytes(uint64_t ram_bytes)
{
    uint64_t hole = pc_pci_hole_start(ram_bytes);
    return ram_bytes < hole ? ram_bytes : hole;
}

std::vector<E820Entry> build_pc_e820(uint64_t ram_bytes)
{
    std::vector<E820Entry> map;
    uint64_t low = pc_low_ram_bytes(ram_bytes);
    // 639 KiB of conventional memory, then the EBDA's last KiB.
    map.push_back({0, 0x9fc00, E820Type::Ram});
    map.push_back({0x9fc00, 0x400, E820Type::Reserved});
    // ACPI tables and the BIOS area (0xE0000-0xFFFFF).
    map.push_back({0xe0000, 0x20000, E820Type::Reserved});
    if (low > 0x100000)
        map.push_back({0x100000, low - 0x100000, E820Type::Ram});
    map.push_back({0xfec00000, 0x1000, E820Type::Reserved}); // IOAPIC
    map.push_back({0xfee00000, 0x1000, E820Type::Reserved}); // local APIC
    if (ram_bytes > low)
        map.push_back({k_4g, ram_bytes - low, E820Type::Ram});
    return map;
}

} // namespace kiln::hw
