// ACPI tables for the PC board, built in code: RSDP (rev 2), RSDT, XSDT,
// FADT (rev 3, fixed-feature power button, PM block at 0x600, reset
// register 0xCF9, SCI on IRQ 9), FACS, a small DSDT written as AML bytes
// (\_S5 and the PCI root bridge with its _CRS windows), and the MADT (one LAPIC, the IOAPIC,
// IRQ0 -> GSI 2 and SCI overrides, LINT1 NMI).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::hw {

struct AcpiConfig {
    uint64_t base_gpa = 0xe0000; // where the blob is placed (RSDP first)
    uint32_t lapic_addr = 0xfee00000;
    uint32_t ioapic_addr = 0xfec00000;
    uint16_t pm_base = 0x600;
    uint8_t sci_irq = 9;
    // The PCI root bridge's 32-bit memory window (its _CRS): from the end
    // of low RAM up to the IOAPIC, as QEMU's i440FX board describes it.
    uint32_t pci_mem_start = 0xe0000000;
    uint32_t pci_mem_end = 0xfebfffff;
};

struct AcpiTables {
    std::vector<uint8_t> blob; // to copy at base_gpa
    uint64_t rsdp_gpa = 0;
};

AcpiTables build_acpi_tables(const AcpiConfig& cfg);

// The DSDT's AML body on its own (tests decode it).
std::vector<uint8_t> build_dsdt_aml(const AcpiConfig& cfg = {});

// Sum of bytes mod 256 (0 for a valid table).
uint8_t acpi_checksum(const uint8_t* data, size_t len);

} // namespace kiln::hw
