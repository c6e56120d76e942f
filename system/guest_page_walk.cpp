#include "system/guest_page_walk.h"

#include <cstdio>

namespace kiln::system {

namespace {

constexpr uint64_t k_present = 1;
constexpr uint64_t k_page_size = 1u << 7; // PS in a PDE/PDPTE
constexpr uint64_t k_addr_mask = 0x000ffffffffff000ull; // bits 51:12

Error unmapped(uint64_t va)
{
    char text[64];
    snprintf(text, sizeof text, "address 0x%llx is not mapped", static_cast<unsigned long long>(va));
    return Error::invalid(text);
}

// One level of a 64-bit-entry table: the entry for `index` at `table`.
Result<uint64_t> entry64(const hw::GuestMemory& memory, uint64_t table, unsigned index, uint64_t va)
{
    auto e = memory.read_value<uint64_t>((table & k_addr_mask) + index * 8ull);
    if (!e.ok() || !(e.value() & k_present))
        return unmapped(va);
    return e.value();
}

Result<uint64_t> walk_long_mode(const hw::GuestMemory& memory, uint64_t cr3, uint64_t va)
{
    // Canonical: bits 63:47 all equal.
    uint64_t top = va >> 47;
    if (top != 0 && top != 0x1ffff)
        return unmapped(va);
    uint64_t pml4e = TRY(entry64(memory, cr3, unsigned((va >> 39) & 511), va));
    uint64_t pdpte = TRY(entry64(memory, pml4e, unsigned((va >> 30) & 511), va));
    if (pdpte & k_page_size)
        return (pdpte & k_addr_mask & ~((1ull << 30) - 1)) | (va & ((1ull << 30) - 1));
    uint64_t pde = TRY(entry64(memory, pdpte, unsigned((va >> 21) & 511), va));
    if (pde & k_page_size)
        return (pde & k_addr_mask & ~((1ull << 21) - 1)) | (va & ((1ull << 21) - 1));
    uint64_t pte = TRY(entry64(memory, pde, unsigned((va >> 12) & 511), va));
    return (pte & k_addr_mask) | (va & 0xfff);
}

Result<uint64_t> walk_pae(const hw::GuestMemory& memory, uint64_t cr3, uint64_t va)
{
    va &= 0xffffffffull;
    auto pdpte = memory.read_value<uint64_t>((cr3 & 0xffffffe0ull) + ((va >> 30) & 3) * 8);
    if (!pdpte.ok() || !(pdpte.value() & k_present))
        return unmapped(va);
    uint64_t pde = TRY(entry64(memory, pdpte.value(), unsigned((va >> 21) & 511), va));
    if (pde & k_page_size)
        return (pde & k_addr_mask & ~((1ull << 21) - 1)) | (va & ((1ull << 21) - 1));
    uint64_t pte = TRY(entry64(memory, pde, unsigned((va >> 12) & 511), va));
    return (pte & k_addr_mask) | (va & 0xfff);
}

Result<uint64_t> walk_legacy(const hw::GuestMemory& memory, uint64_t cr3, bool pse, uint64_t va)
{
    va &= 0xffffffffull;
    auto pde = memory.read_value<uint32_t>((cr3 & 0xfffff000ull) + ((va >> 22) & 1023) * 4);
    if (!pde.ok() || !(pde.value() & k_present))
        return unmapped(va);
    if (pse && (pde.value() & k_page_size)) {
        // PSE-36: PDE bits 20:13 are physical address bits 39:32.
        uint64_t high = uint64_t((pde.value() >> 13) & 0xff) << 32;
        return high | (pde.value() & 0xffc00000u) | (va & 0x3fffff);
    }
    auto pte = memory.read_value<uint32_t>((pde.value() & 0xfffff000u) + ((va >> 12) & 1023) * 4);
    if (!pte.ok() || !(pte.value() & k_present))
        return unmapped(va);
    return (pte.value() & 0xfffff000u) | (va & 0xfff);
}

} // namespace

Result<uint64_t> translate_guest_virtual(const hw::GuestMemory& memory, const accel::x86::CpuState& cpu, uint64_t va)
{
    using namespace accel::x86;
    if (!cpu.paging())
        return cpu.long_mode_active() ? va : (va & 0xffffffffull);
    if (cpu.long_mode_active())
        return walk_long_mode(memory, cpu.cr3, va);
    if (cpu.cr4 & k_cr4_pae)
        return walk_pae(memory, cpu.cr3, va);
    return walk_legacy(memory, cpu.cr3, cpu.cr4 & k_cr4_pse, va);
}

} // namespace kiln::system
