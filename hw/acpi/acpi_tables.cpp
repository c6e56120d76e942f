#include "hw/acpi/acpi_tables.h"

#include <cstring>
#include <string>

namespace kiln::hw {

namespace {

void put(std::vector<uint8_t>& b, size_t off, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b[off + i] = uint8_t(v >> (8 * i));
}

void append(std::vector<uint8_t>& b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b.push_back(uint8_t(v >> (8 * i)));
}

// Standard 36-byte header; length and checksum are fixed up by finish().
std::vector<uint8_t> header(const char sig[4], uint8_t revision)
{
    std::vector<uint8_t> t(36, 0);
    std::memcpy(t.data(), sig, 4);
    t[8] = revision;
    std::memcpy(t.data() + 10, "KILN  ", 6);
    std::memcpy(t.data() + 16, "KILNPC  ", 8);
    put(t, 24, 1, 4);
    std::memcpy(t.data() + 28, "KILN", 4);
    put(t, 32, 1, 4);
    return t;
}

void finish(std::vector<uint8_t>& t)
{
    put(t, 4, t.size(), 4);
    t[9] = 0;
    t[9] = uint8_t(-acpi_checksum(t.data(), t.size()));
}

// AML PkgLength: the length counts its own encoding bytes.
void pkg_length(std::vector<uint8_t>& out, size_t body_len)
{
    if (body_len + 1 < 64) {
        out.push_back(uint8_t(body_len + 1));
        return;
    }
    size_t total = body_len + 2;
    if (total < 4096) {
        out.push_back(uint8_t(0x40 | (total & 0xf)));
        out.push_back(uint8_t(total >> 4));
        return;
    }
    total = body_len + 3;
    out.push_back(uint8_t(0x80 | (total & 0xf)));
    out.push_back(uint8_t(total >> 4));
    out.push_back(uint8_t(total >> 12));
}

void name_seg(std::vector<uint8_t>& out, const char* seg) { out.insert(out.end(), seg, seg + 4); }

// EISA ID "PNP0A03" compressed into a DWordConst.
void eisa_id(std::vector<uint8_t>& out, const char* id)
{
    uint32_t v = uint32_t((id[0] - 0x40) << 26 | (id[1] - 0x40) << 21 | (id[2] - 0x40) << 16);
    v |= uint32_t(std::stoul(std::string(id + 3, 4), nullptr, 16));
    // Stored big-endian on the wire.
    out.push_back(0x0c);
    out.push_back(uint8_t(v >> 24));
    out.push_back(uint8_t(v >> 16));
    out.push_back(uint8_t(v >> 8));
    out.push_back(uint8_t(v));
}

void name_integer(std::vector<uint8_t>& out, const char* seg, uint8_t value)
{
    out.push_back(0x08); // NameOp
    name_seg(out, seg);
    if (value == 0)
        out.push_back(0x00); // ZeroOp
    else if (value == 1)
        out.push_back(0x01); // OneOp
    else {
        out.push_back(0x0a); // BytePrefix
        out.push_back(value);
    }
}

std::vector<uint8_t> device(const char* seg, const std::vector<uint8_t>& body)
{
    std::vector<uint8_t> out = {0x5b, 0x82}; // DeviceOp
    std::vector<uint8_t> inner;
    name_seg(inner, seg);
    inner.insert(inner.end(), body.begin(), body.end());
    pkg_length(out, inner.size());
    out.insert(out.end(), inner.begin(), inner.end());
    return out;
}

// Word/DWord Address Space Descriptors (ACPI 6.4, 6.4.3.5.2-3) for the
// root bridge's _CRS. Without windows Linux cannot claim the legacy IDE
// ports nor assign any BAR ("can't claim; no compatible bridge window").
enum class AddrSpace : uint8_t { Memory = 0, Io = 1, BusNumber = 2 };
constexpr uint8_t k_producer_fixed = 0x0c; // MinFixed, MaxFixed, producer

void word_space(std::vector<uint8_t>& out, AddrSpace type, uint8_t type_flags, uint16_t min, uint16_t max)
{
    out.push_back(0x88);
    append(out, 13, 2);
    out.push_back(uint8_t(type));
    out.push_back(k_producer_fixed);
    out.push_back(type_flags);
    append(out, 0, 2); // granularity
    append(out, min, 2);
    append(out, max, 2);
    append(out, 0, 2); // translation
    append(out, uint32_t(max) - min + 1, 2);
}

void dword_memory(std::vector<uint8_t>& out, uint8_t type_flags, uint32_t min, uint32_t max)
{
    out.push_back(0x87);
    append(out, 23, 2);
    out.push_back(uint8_t(AddrSpace::Memory));
    out.push_back(k_producer_fixed);
    out.push_back(type_flags);
    append(out, 0, 4);
    append(out, min, 4);
    append(out, max, 4);
    append(out, 0, 4);
    append(out, uint64_t(max) - min + 1, 4);
}

// Name (_CRS, ResourceTemplate () { ... }) as QEMU's i440FX DSDT has it:
// buses 0-255, the 0xCF8 config ports, I/O below and above them, the VGA
// hole and the 32-bit PCI hole.
std::vector<uint8_t> pci_root_crs(const AcpiConfig& cfg)
{
    std::vector<uint8_t> rt;
    word_space(rt, AddrSpace::BusNumber, 0, 0, 0xff);
    const uint8_t cf8_ports[] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08}; // IO (Decode16, 0xCF8, 8)
    rt.insert(rt.end(), cf8_ports, cf8_ports + sizeof cf8_ports);
    constexpr uint8_t k_entire_range = 0x03;
    word_space(rt, AddrSpace::Io, k_entire_range, 0x0000, 0x0cf7);
    word_space(rt, AddrSpace::Io, k_entire_range, 0x0d00, 0xffff);
    constexpr uint8_t k_rw_cacheable = 0x03, k_rw_uncached = 0x01;
    dword_memory(rt, k_rw_cacheable, 0xa0000, 0xbffff);
    if (cfg.pci_mem_start < cfg.pci_mem_end)
        dword_memory(rt, k_rw_uncached, cfg.pci_mem_start, cfg.pci_mem_end);
    rt.push_back(0x79); // End Tag, checksum 0 ("treated as correct")
    rt.push_back(0x00);

    std::vector<uint8_t> buf_body = {0x0b}; // WordPrefix: BufferSize
    append(buf_body, rt.size(), 2);
    buf_body.insert(buf_body.end(), rt.begin(), rt.end());
    std::vector<uint8_t> out = {0x08};
    name_seg(out, "_CRS");
    out.push_back(0x11); // BufferOp
    pkg_length(out, buf_body.size());
    out.insert(out.end(), buf_body.begin(), buf_body.end());
    return out;
}

} // namespace

uint8_t acpi_checksum(const uint8_t* data, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = uint8_t(sum + data[i]);
    return sum;
}

std::vector<uint8_t> build_dsdt_aml(const AcpiConfig& cfg)
{
    std::vector<uint8_t> aml;
    // Name (\_S5, Package (4) { S5 SLP_TYP, 0, 0, 0 })
    aml.push_back(0x08);
    aml.push_back('\\');
    name_seg(aml, "_S5_");
    aml.push_back(0x12); // PackageOp
    std::vector<uint8_t> pkg = {0x04, 0x00, 0x00, 0x00, 0x00};
    pkg_length(aml, pkg.size());
    aml.insert(aml.end(), pkg.begin(), pkg.end());

    // Scope (\_SB) { Device (PCI0) { _HID PNP0A03, _ADR 0, _UID 0, _PRT } }
    std::vector<uint8_t> pci_body;
    pci_body.push_back(0x08);
    name_seg(pci_body, "_HID");
    eisa_id(pci_body, "PNP0A03");
    name_integer(pci_body, "_ADR", 0);
    name_integer(pci_body, "_UID", 0);
    auto crs = pci_root_crs(cfg);
    pci_body.insert(pci_body.end(), crs.begin(), crs.end());
    // _PRT (APIC mode): slot s, INTx pin p (0 = INTA) -> GSI 16 + (s + p) % 4,
    // the PIIX3 swizzle onto PIRQA-D, which the board wires to IOAPIC 16-19.
    std::vector<uint8_t> prt;
    unsigned entries = 0;
    for (unsigned slot = 1; slot < 32; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            std::vector<uint8_t> e = {0x04};                  // NumElements
            uint32_t addr = (slot << 16) | 0xffff;            // any function
            e.push_back(0x0c);                                // DWordConst
            for (unsigned i = 0; i < 4; i++)
                e.push_back(uint8_t(addr >> (8 * i)));
            e.push_back(0x0a);                                // BytePrefix
            e.push_back(uint8_t(pin));
            e.push_back(0x00);                                // Source: none (GSI)
            e.push_back(0x0a);
            e.push_back(uint8_t(16 + (slot + pin) % 4));      // SourceIndex: GSI
            prt.push_back(0x12);                              // PackageOp
            pkg_length(prt, e.size());
            prt.insert(prt.end(), e.begin(), e.end());
            entries++;
        }
    }
    pci_body.push_back(0x08);
    name_seg(pci_body, "_PRT");
    pci_body.push_back(0x12);
    std::vector<uint8_t> prt_pkg = {uint8_t(entries)};
    prt_pkg.insert(prt_pkg.end(), prt.begin(), prt.end());
    pkg_length(pci_body, prt_pkg.size());
    pci_body.insert(pci_body.end(), prt_pkg.begin(), prt_pkg.end());
    std::vector<uint8_t> scope_body;
    scope_body.push_back('\\');
    name_seg(scope_body, "_SB_");
    auto pci0 = device("PCI0", pci_body);
    scope_body.insert(scope_body.end(), pci0.begin(), pci0.end());
    aml.push_back(0x10); // ScopeOp
    pkg_length(aml, scope_body.size());
    aml.insert(aml.end(), scope_body.begin(), scope_body.end());
    return aml;
}

AcpiTables build_acpi_tables(const AcpiConfig& cfg)
{
    AcpiTables out;
    std::vector<uint8_t>& blob = out.blob;
    auto place = [&](std::vector<uint8_t> t) {
        while (blob.size() % 16)
            blob.push_back(0);
        uint64_t at = cfg.base_gpa + blob.size();
        blob.insert(blob.end(), t.begin(), t.end());
        return at;
    };
    // RSDP first so it sits on a 16-byte boundary in the BIOS area.
    blob.resize(36);
    out.rsdp_gpa = cfg.base_gpa;

    // FACS (64 bytes, no header checksum).
    std::vector<uint8_t> facs(64, 0);
    std::memcpy(facs.data(), "FACS", 4);
    put(facs, 4, 64, 4);
    uint64_t facs_gpa = place(facs);

    auto dsdt = header("DSDT", 2);
    auto aml = build_dsdt_aml(cfg);
    dsdt.insert(dsdt.end(), aml.begin(), aml.end());
    finish(dsdt);
    uint64_t dsdt_gpa = place(dsdt);

    // FADT revision 3 (244 bytes).
    auto fadt = header("FACP", 3);
    fadt.resize(244, 0);
    put(fadt, 36, facs_gpa, 4);
    put(fadt, 40, dsdt_gpa, 4);
    fadt[45] = 0;                  // preferred PM profile: unspecified
    put(fadt, 46, cfg.sci_irq, 2); // SCI_INT
    put(fadt, 48, 0, 4);           // SMI_CMD: none, always in ACPI mode
    put(fadt, 56, cfg.pm_base, 4); // PM1a_EVT_BLK
    put(fadt, 64, cfg.pm_base + 4, 4); // PM1a_CNT_BLK
    put(fadt, 76, cfg.pm_base + 8, 4); // PM_TMR_BLK
    fadt[88] = 4;                  // PM1_EVT_LEN
    fadt[89] = 2;                  // PM1_CNT_LEN
    fadt[91] = 4;                  // PM_TMR_LEN
    put(fadt, 96, 0xfff, 2);       // P_LVL2_LAT: C2 unsupported
    put(fadt, 98, 0xfff, 2);       // P_LVL3_LAT: C3 unsupported
    fadt[108] = 0x32;              // CENTURY byte in CMOS
    put(fadt, 109, 0x0003, 2);     // IAPC_BOOT_ARCH: legacy devices, 8042
    // Flags: WBINVD, PROC_C1, SLP_BUTTON (none), RTC_S4, TMR_VAL_EXT,
    // RESET_REG_SUP.
    put(fadt, 112, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 7) | (1u << 8) | (1u << 10), 4);
    // RESET_REG: system I/O, 8 bits at 0xCF9; value 0x06 (hard reset).
    fadt[116] = 1;
    fadt[117] = 8;
    fadt[119] = 1;
    put(fadt, 120, 0xcf9, 8);
    fadt[128] = 0x06;
    fadt[131] = 0;
    put(fadt, 132, facs_gpa, 8);  // X_FIRMWARE_CTRL
    put(fadt, 140, dsdt_gpa, 8);  // X_DSDT
    auto gas_io = [&](size_t off, uint8_t bits, uint64_t port, uint8_t access) {
        fadt[off] = 1; // system I/O
        fadt[off + 1] = bits;
        fadt[off + 3] = access;
        put(fadt, off + 4, port, 8);
    };
    gas_io(148, 32, cfg.pm_base, 2);     // X_PM1a_EVT_BLK
    gas_io(172, 16, cfg.pm_base + 4, 2); // X_PM1a_CNT_BLK
    gas_io(208, 32, cfg.pm_base + 8, 3); // X_PM_TMR_BLK
    finish(fadt);
    uint64_t fadt_gpa = place(fadt);

    auto madt = header("APIC", 1);
    append(madt, cfg.lapic_addr, 4);
    append(madt, 1, 4); // PCAT_COMPAT: 8259s present
    // Processor local APIC: processor 0, APIC id 0, enabled.
    for (uint8_t b : {0, 8, 0, 0})
        madt.push_back(b);
    append(madt, 1, 4);
    // IOAPIC id 0 at ioapic_addr, GSI base 0.
    for (uint8_t b : {1, 12, 0, 0})
        madt.push_back(b);
    append(madt, cfg.ioapic_addr, 4);
    append(madt, 0, 4);
    // Interrupt source overrides: ISA IRQ 0 -> GSI 2 (edge, high);
    // SCI -> GSI 9, level, active high.
    for (uint8_t b : {2, 10, 0, 0})
        madt.push_back(b);
    append(madt, 2, 4);
    append(madt, 0, 2);
    for (uint8_t b : {uint8_t(2), uint8_t(10), uint8_t(0), cfg.sci_irq})
        madt.push_back(b);
    append(madt, cfg.sci_irq, 4);
    append(madt, 0x000d, 2);
    // Local APIC NMI: all processors, LINT1.
    for (uint8_t b : {4, 6, 0xff, 0, 0, 1})
        madt.push_back(b);
    finish(madt);
    uint64_t madt_gpa = place(madt);

    auto rsdt = header("RSDT", 1);
    append(rsdt, fadt_gpa, 4);
    append(rsdt, madt_gpa, 4);
    finish(rsdt);
    uint64_t rsdt_gpa = place(rsdt);

    auto xsdt = header("XSDT", 1);
    append(xsdt, fadt_gpa, 8);
    append(xsdt, madt_gpa, 8);
    finish(xsdt);
    uint64_t xsdt_gpa = place(xsdt);

    // RSDP, revision 2.
    std::memcpy(blob.data(), "RSD PTR ", 8);
    std::memcpy(blob.data() + 9, "KILN  ", 6);
    blob[15] = 2;
    put(blob, 16, rsdt_gpa, 4);
    put(blob, 20, 36, 4);
    put(blob, 24, xsdt_gpa, 8);
    blob[8] = uint8_t(-acpi_checksum(blob.data(), 20));
    blob[32] = uint8_t(-acpi_checksum(blob.data(), 36));
    return out;
}

} // namespace kiln::hw
