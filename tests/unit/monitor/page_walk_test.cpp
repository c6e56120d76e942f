// translate_guest_virtual over page tables built in guest memory: 4-level
// long mode with 4 KiB, 2 MiB and 1 GiB pages, PAE, legacy 32-bit with
// PSE, no paging, and the unmapped and non-canonical failures.
#include <gtest/gtest.h>

#include "system/guest_page_walk.h"

namespace kiln::system {
namespace {

struct PageWalkTest : ::testing::Test {
    void SetUp() override { mem = hw::GuestMemory::create(16ull << 20, 16ull << 20).value(); }
    void put64(uint64_t gpa, uint64_t v) { ASSERT_TRUE(mem->write_value<uint64_t>(gpa, v).ok()); }
    void put32(uint64_t gpa, uint32_t v) { ASSERT_TRUE(mem->write_value<uint32_t>(gpa, v).ok()); }
    std::unique_ptr<hw::GuestMemory> mem;
    accel::x86::CpuState cpu;
};

TEST_F(PageWalkTest, NoPagingIsIdentity)
{
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0x12345).value(), 0x12345u);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0x1'0000'1000ull).value(), 0x1000u); // 32-bit wrap
}

TEST_F(PageWalkTest, LongModeFourLevels)
{
    using namespace accel::x86;
    cpu.cr0 = k_cr0_pe | k_cr0_pg;
    cpu.cr4 = k_cr4_pae;
    cpu.efer = k_efer_lme | k_efer_lma;
    cpu.cr3 = 0x10000;
    uint64_t va = 0xffffffff81000123ull; // kernel text
    unsigned i4 = (va >> 39) & 511, i3 = (va >> 30) & 511, i2 = (va >> 21) & 511, i1 = (va >> 12) & 511;
    put64(0x10000 + i4 * 8, 0x11000 | 3);
    put64(0x11000 + i3 * 8, 0x12000 | 3);
    put64(0x12000 + i2 * 8, 0x13000 | 3);
    put64(0x13000 + i1 * 8, 0x345000 | 3);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, va).value(), 0x345123u);
    // A 2 MiB page one PDE further on.
    put64(0x12000 + (i2 + 1) * 8, 0x600000 | 0x83);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, va + (2 << 20) + 0x4567).value(), 0x600000u + 0x4567 + 0x123);
    // A 1 GiB page at PML4 slot 0.
    put64(0x10000, 0x14000 | 3);
    put64(0x14000 + 8, 0x40000000 | 0x83);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0x40001234).value(), 0x40001234u);
    // Unmapped and non-canonical.
    EXPECT_FALSE(translate_guest_virtual(*mem, cpu, 0x80000000).ok());
    EXPECT_FALSE(translate_guest_virtual(*mem, cpu, 0x0000800000000000ull).ok());
}

TEST_F(PageWalkTest, PaeAndLegacy)
{
    using namespace accel::x86;
    cpu.cr0 = k_cr0_pe | k_cr0_pg;
    cpu.cr4 = k_cr4_pae;
    cpu.cr3 = 0x20000;
    put64(0x20000 + 3 * 8, 0x21000 | 1); // PDPTE 3: 0xc0000000..
    put64(0x21000, 0x22000 | 3);
    put64(0x22000 + 5 * 8, 0x777000 | 3);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0xc0005abc).value(), 0x777abcu);
    EXPECT_FALSE(translate_guest_virtual(*mem, cpu, 0x00005abc).ok());

    cpu.cr4 = k_cr4_pse;
    cpu.cr3 = 0x30000;
    put32(0x30000 + 0x300 * 4, 0x31000 | 3);
    put32(0x31000 + 2 * 4, 0x888000 | 3);
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0xc0002010).value(), 0x888010u);
    put32(0x30000 + 0x301 * 4, 0x00c00000 | 0x83); // 4 MiB page
    EXPECT_EQ(translate_guest_virtual(*mem, cpu, 0xc0412345).value(), 0x00c12345u);
}

} // namespace
} // namespace kiln::system
