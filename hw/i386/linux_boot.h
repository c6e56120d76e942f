// Direct Linux boot, as QEMU's -kernel/-initrd/-append without firmware.
//
// bzImage: the Linux/x86 boot protocol (>= 2.06). The protected-mode
// kernel is loaded at 1 MiB, boot_params (the "zero page") gets a copy of
// the setup header, the command line, the initrd (highest page-aligned
// spot below initrd_addr_max and the end of low RAM), the E820 map and the
// ACPI RSDP address. Kernels that advertise XLF_KERNEL_64 (protocol 2.12+)
// are entered at startup_64 (load address + 0x200) with the 64-bit boot
// protocol: long mode, identity-mapped page tables for the first 4 GiB
// (2 MiB pages), a flat GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18,
// RSI = boot_params. Others are entered at code32_start in flat 32-bit
// protected mode with ESI = boot_params.
//
// ELF vmlinux: the PVH entry from its XEN_ELFNOTE_PHYS32_ENTRY (18) note;
// PT_LOAD segments go to their physical addresses and the kernel starts in
// flat 32-bit protected mode, paging off, EBX = hvm_start_info (with the
// command line, the initrd as module 0, the memory map and the RSDP).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hw/core/guest_memory.h"
#include "hw/i386/e820.h"
#include "util/result.h"

namespace kiln::hw {

// The CPU state the loader asks for; system/ applies it to the vCPU.
struct BootCpuSetup {
    enum class Mode { Long64, Protected32 };
    Mode mode = Mode::Long64;
    uint64_t entry = 0;          // RIP
    uint64_t rsi = 0;            // boot_params (Linux boot protocol)
    uint64_t rbx = 0;            // hvm_start_info (PVH)
    uint64_t cr3 = 0;            // PML4 (Long64 only)
    uint64_t gdt_base = 0;
    uint16_t gdt_limit = 0;
    uint16_t code_selector = 0x10;
    uint16_t data_selector = 0x18;
};

struct LinuxBootConfig {
    std::string cmdline;
    std::vector<E820Entry> e820;
    uint64_t low_ram_end = 0; // end of RAM below 4 GiB
    uint64_t rsdp_gpa = 0;
};

// Fixed low-memory layout used by the loader.
struct LinuxBootLayout {
    static constexpr uint64_t k_gdt = 0x500;
    static constexpr uint64_t k_start_info = 0x6000; // PVH hvm_start_info
    static constexpr uint64_t k_pvh_memmap = 0x6100;
    static constexpr uint64_t k_pvh_modlist = 0x6f00;
    static constexpr uint64_t k_zero_page = 0x7000;
    static constexpr uint64_t k_pml4 = 0x9000;      // then PDPT, 4 PDs to 0xefff
    static constexpr uint64_t k_cmdline = 0x20000;
    static constexpr uint64_t k_cmdline_max = 0x10000;
    static constexpr uint64_t k_kernel = 0x100000;
};

enum class KernelFormat { BzImage, ElfPvh };

// Loads from bytes already read (tests use this with synthetic images).
// kernel_name/initrd_name appear in errors.
Result<BootCpuSetup> load_linux(GuestMemory& mem, const LinuxBootConfig& cfg, std::span<const uint8_t> kernel,
                                const std::string& kernel_name, std::span<const uint8_t> initrd,
                                const std::string& initrd_name);

// Reads the files and loads. An empty initrd_path means no initrd.
Result<BootCpuSetup> load_linux_files(GuestMemory& mem, const LinuxBootConfig& cfg, const std::string& kernel_path,
                                      const std::string& initrd_path);

// What the kernel bytes look like, or an error saying why they are not a
// kernel Kiln can boot.
Result<KernelFormat> probe_kernel(std::span<const uint8_t> kernel, const std::string& kernel_name);

} // namespace kiln::hw
