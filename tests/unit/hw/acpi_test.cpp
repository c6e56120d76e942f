#include <algorithm>
#include <cstring>

#include "hw/acpi/acpi_pm.h"
#include "hw/acpi/acpi_tables.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct PmFixture : ::testing::Test {
    PmFixture() { h.map_pio(0x600, AcpiPm::k_region_bytes, pm); }
    DeviceHarness h;
    int poweroffs = 0;
    AcpiPm pm{h.clock, h.irq[9], [this] { poweroffs++; }};
};

TEST_F(PmFixture, SciEnabledAtResetAndS5PowersOff)
{
    EXPECT_EQ(h.inw(0x604) & 1, 1);
    h.outw(0x604, uint16_t((5 << 10) | (1 << 13))); // S1-ish type: ignored
    EXPECT_EQ(poweroffs, 0);
    h.outw(0x604, uint16_t((AcpiPm::k_s5_slp_typ << 10) | (1 << 13)));
    EXPECT_EQ(poweroffs, 1);
    EXPECT_EQ(h.inw(0x604) & (1 << 13), 0); // SLP_EN reads as 0
}

TEST_F(PmFixture, PowerButtonRaisesSciWhenEnabled)
{
    pm.press_power_button();
    EXPECT_FALSE(h.irq[9].level());
    EXPECT_EQ(h.inw(0x600) & 0x100, 0x100);
    h.outw(0x602, 0x100);
    EXPECT_TRUE(h.irq[9].level());
    h.outw(0x600, 0x100); // write 1 to clear
    EXPECT_FALSE(h.irq[9].level());
    EXPECT_EQ(h.inw(0x600) & 0x100, 0);
}

TEST_F(PmFixture, PmTimerRunsAt3579545Hz)
{
    uint32_t a = h.inl(0x608);
    h.step_ns(1000000000ull);
    uint32_t b = h.inl(0x608);
    EXPECT_EQ(b - a, 3579545u);
}

TEST_F(PmFixture, TimerCarrySetsTmrStsAndSciWhenEnabled)
{
    const uint64_t carry_ns = (1ull << 31) * 1000000000ull / AcpiPm::k_timer_hz + 1; // ~600 s
    EXPECT_EQ(h.inw(0x600) & AcpiPm::k_sts_tmr, 0);
    h.step_ns(carry_ns);
    EXPECT_EQ(h.inw(0x600) & AcpiPm::k_sts_tmr, AcpiPm::k_sts_tmr);
    EXPECT_FALSE(h.irq[9].level()); // TMR_EN clear: status only
    h.outw(0x600, AcpiPm::k_sts_tmr);
    EXPECT_EQ(h.inw(0x600) & AcpiPm::k_sts_tmr, 0);
    // Enabled: the carry raises SCI by itself, with no register read.
    h.outw(0x602, AcpiPm::k_sts_tmr);
    h.step_ns(carry_ns / 2);
    EXPECT_FALSE(h.irq[9].level());
    h.step_ns(carry_ns);
    EXPECT_TRUE(h.irq[9].level());
    h.outw(0x600, AcpiPm::k_sts_tmr);
    EXPECT_FALSE(h.irq[9].level());
    // Disabling SCI_EN is ignored: the machine has no legacy (SMI) mode.
    h.outw(0x604, 0);
    EXPECT_EQ(h.inw(0x604) & 1, 1);
}

TEST_F(PmFixture, EnableRegisterKeepsOnlyDefinedBits)
{
    h.outw(0x602, 0xffff);
    EXPECT_EQ(h.inw(0x602), 0x0721); // TMR, GBL, PWRBTN, SLPBTN, RTC
    h.outw(0x602, 0);
    pm.press_power_button();
    h.outw(0x600, 0xfeff); // writing 0 to a status bit leaves it set
    EXPECT_EQ(h.inw(0x600) & AcpiPm::k_sts_pwrbtn, AcpiPm::k_sts_pwrbtn);
}

TEST_F(PmFixture, StateRoundTrip)
{
    h.outw(0x602, 0x100);
    IrqLine sci;
    AcpiPm copy(h.clock, sci, nullptr);
    state_round_trip(pm, copy);
    EXPECT_EQ(copy.read(2, 2), 0x100u);
}

const uint8_t* table_at(const AcpiTables& t, uint64_t gpa)
{
    return t.blob.data() + (gpa - 0xe0000);
}
uint32_t u32(const uint8_t* p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t u64(const uint8_t* p)
{
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

TEST(AcpiTables, RsdpXsdtFadtMadtAreConsistentAndChecksummed)
{
    AcpiTables t = build_acpi_tables(AcpiConfig{});
    const uint8_t* rsdp = table_at(t, t.rsdp_gpa);
    ASSERT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
    EXPECT_EQ(acpi_checksum(rsdp, 20), 0);
    EXPECT_EQ(acpi_checksum(rsdp, 36), 0);
    EXPECT_EQ(rsdp[15], 2);
    const uint8_t* xsdt = table_at(t, u64(rsdp + 24));
    ASSERT_EQ(std::memcmp(xsdt, "XSDT", 4), 0);
    uint32_t xlen = u32(xsdt + 4);
    EXPECT_EQ(acpi_checksum(xsdt, xlen), 0);
    ASSERT_EQ(xlen, 36u + 16u);
    const uint8_t* fadt = table_at(t, u64(xsdt + 36));
    ASSERT_EQ(std::memcmp(fadt, "FACP", 4), 0);
    EXPECT_EQ(acpi_checksum(fadt, u32(fadt + 4)), 0);
    EXPECT_EQ(fadt[46], 9);                     // SCI
    EXPECT_EQ(u32(fadt + 56), 0x600u);          // PM1a_EVT
    EXPECT_EQ(u32(fadt + 64), 0x604u);          // PM1a_CNT
    EXPECT_EQ(u32(fadt + 76), 0x608u);          // PM_TMR
    EXPECT_EQ(u32(fadt + 112) & (1u << 4), 0u); // fixed-feature power button
    const uint8_t* dsdt = table_at(t, u64(fadt + 140));
    ASSERT_EQ(std::memcmp(dsdt, "DSDT", 4), 0);
    EXPECT_EQ(acpi_checksum(dsdt, u32(dsdt + 4)), 0);
    EXPECT_EQ(u32(fadt + 40), u64(fadt + 140));
    const uint8_t* madt = table_at(t, u64(xsdt + 44));
    ASSERT_EQ(std::memcmp(madt, "APIC", 4), 0);
    uint32_t mlen = u32(madt + 4);
    EXPECT_EQ(acpi_checksum(madt, mlen), 0);
    EXPECT_EQ(u32(madt + 36), 0xfee00000u);
    // Walk the entries: one LAPIC, one IOAPIC, two overrides, one NMI.
    unsigned counts[16] = {};
    for (uint32_t off = 44; off < mlen; off += madt[off + 1]) {
        ASSERT_GE(madt[off + 1], 2);
        counts[madt[off]]++;
        if (madt[off] == 2 && madt[off + 3] == 0) {
            EXPECT_EQ(u32(madt + off + 4), 2u); // IRQ0 -> GSI 2
        }
        if (madt[off] == 1) {
            EXPECT_EQ(u32(madt + off + 4), 0xfec00000u);
        }
    }
    EXPECT_EQ(counts[0], 1u);
    EXPECT_EQ(counts[1], 1u);
    EXPECT_EQ(counts[2], 2u);
    EXPECT_EQ(counts[4], 1u);
}

TEST(AcpiTables, DsdtAmlEncodesS5AndPciRoot)
{
    auto aml = build_dsdt_aml();
    // NameOp \_S5_ PackageOp len=6 NumElements=4 0 0 0 0
    const uint8_t s5[] = {0x08, '\\', '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00};
    ASSERT_GE(aml.size(), sizeof s5);
    EXPECT_EQ(std::memcmp(aml.data(), s5, sizeof s5), 0);
    // ScopeOp whose PkgLength covers exactly the rest of the block.
    size_t scope = sizeof s5;
    ASSERT_EQ(aml[scope], 0x10);
    uint8_t lead = aml[scope + 1];
    unsigned extra = lead >> 6;
    size_t len = extra ? (lead & 0x0f) : (lead & 0x3f);
    for (unsigned i = 0; i < extra; i++)
        len |= size_t(aml[scope + 2 + i]) << (4 + 8 * i);
    EXPECT_EQ(len, aml.size() - scope - 1);
    // _PRT: slot 3 INTA -> GSI 19, slot 3 INTB -> GSI 16 (the PIIX3 swizzle).
    const uint8_t slot3_inta[] = {0x04, 0x0c, 0xff, 0xff, 0x03, 0x00, 0x0a, 0x00, 0x00, 0x0a, 19};
    const uint8_t slot3_intb[] = {0x04, 0x0c, 0xff, 0xff, 0x03, 0x00, 0x0a, 0x01, 0x00, 0x0a, 16};
    EXPECT_NE(std::search(aml.begin(), aml.end(), slot3_inta, slot3_inta + sizeof slot3_inta), aml.end());
    EXPECT_NE(std::search(aml.begin(), aml.end(), slot3_intb, slot3_intb + sizeof slot3_intb), aml.end());
    const char prt[] = "_PRT";
    EXPECT_NE(std::search(aml.begin(), aml.end(), prt, prt + 4), aml.end());
    // PNP0A03 as an EISA id.
    const uint8_t hid[] = {0x0c, 0x41, 0xd0, 0x0a, 0x03};
    EXPECT_NE(std::search(aml.begin(), aml.end(), hid, hid + 5), aml.end());
}

TEST(AcpiTables, PciRootCrsHasIoAndMemoryWindows)
{
    AcpiConfig cfg;
    cfg.pci_mem_start = 0x20000000;
    auto aml = build_dsdt_aml(cfg);
    const char crs[] = "_CRS";
    EXPECT_NE(std::search(aml.begin(), aml.end(), crs, crs + 4), aml.end());
    // WordIO 0x0000-0x0CF7 (covers the legacy IDE ports Linux must claim).
    const uint8_t io_low[] = {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x00, 0xf7, 0x0c, 0, 0, 0xf8, 0x0c};
    EXPECT_NE(std::search(aml.begin(), aml.end(), io_low, io_low + sizeof io_low), aml.end());
    // DWordMemory from the end of low RAM to 0xFEBFFFFF.
    const uint8_t mem[] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20, 0xff, 0xff, 0xbf,
        0xfe};
    EXPECT_NE(std::search(aml.begin(), aml.end(), mem, mem + sizeof mem), aml.end());
    // Bus numbers 0-255.
    const uint8_t bus[] = {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0x00, 0x00, 0xff, 0x00};
    EXPECT_NE(std::search(aml.begin(), aml.end(), bus, bus + sizeof bus), aml.end());
}

} // namespace
} // namespace kiln::hw::test
