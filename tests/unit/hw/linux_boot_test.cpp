#include "hw/i386/linux_boot.h"

#include <glob.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "hw/i386/e820.h"
#include "tests/unit/hw/harness.h"
#include "tests/unit/hw/synthetic_kernel.h"

namespace kiln::hw::test {
namespace {

using Layout = LinuxBootLayout;

template<typename T>
void put(std::vector<uint8_t>& b, size_t off, T v)
{
    put_le<T>(b, off, v);
}

template<typename T>
T get(GuestMemory& mem, uint64_t gpa)
{
    auto v = mem.read_value<T>(gpa);
    EXPECT_TRUE(v.ok());
    return v.ok() ? v.value() : T{};
}

struct BootFixture : ::testing::Test {
    void SetUp() override
    {
        auto m = GuestMemory::create(ram, pc_pci_hole_start(ram));
        ASSERT_TRUE(m.ok());
        mem = std::move(m).value();
        cfg.e820 = build_pc_e820(ram);
        cfg.low_ram_end = pc_low_ram_bytes(ram);
        cfg.rsdp_gpa = 0xe0000;
        cfg.cmdline = "console=ttyS0 root=/dev/vda";
    }
    uint64_t ram = 128ull << 20;
    std::unique_ptr<GuestMemory> mem;
    LinuxBootConfig cfg;
};

TEST_F(BootFixture, BzImage64BitEntryAndZeroPage)
{
    auto k = synthetic_bzimage(0x20f, 0x1);
    std::vector<uint8_t> initrd(100000, 0x5a);
    auto r = load_linux(*mem, cfg, k, "bz", initrd, "rd");
    ASSERT_TRUE(r.ok()) << r.error().message();
    BootCpuSetup s = r.value();
    EXPECT_EQ(s.mode, BootCpuSetup::Mode::Long64);
    EXPECT_EQ(s.entry, 0x100200u);
    EXPECT_EQ(s.rsi, Layout::k_zero_page);
    EXPECT_EQ(s.cr3, Layout::k_pml4);
    // Kernel payload at 1 MiB.
    EXPECT_EQ(get<uint8_t>(*mem, 0x100000 + 3), uint8_t(3 * 7));
    uint64_t zp = Layout::k_zero_page;
    EXPECT_EQ(get<uint32_t>(*mem, zp + 0x202), 0x53726448u);
    EXPECT_EQ(get<uint8_t>(*mem, zp + 0x210), 0xff);
    EXPECT_EQ(get<uint32_t>(*mem, zp + 0x228), Layout::k_cmdline);
    char cmd[64] = {};
    ASSERT_TRUE(mem->read(Layout::k_cmdline, cmd, sizeof cmd - 1).ok());
    EXPECT_STREQ(cmd, "console=ttyS0 root=/dev/vda");
    // Initrd: page-aligned, at the top of low RAM, contents intact.
    uint32_t rd = get<uint32_t>(*mem, zp + 0x218);
    EXPECT_EQ(get<uint32_t>(*mem, zp + 0x21c), 100000u);
    EXPECT_EQ(rd % 4096, 0u);
    EXPECT_LE(rd + 100000u, ram);
    EXPECT_GT(rd + 100000u + 4096, ram);
    EXPECT_EQ(get<uint8_t>(*mem, rd + 99999), 0x5a);
    // E820 and RSDP.
    EXPECT_EQ(get<uint8_t>(*mem, zp + 0x1e8), cfg.e820.size());
    EXPECT_EQ(get<uint64_t>(*mem, zp + 0x2d0 + 20 * 3), 0x100000u);
    EXPECT_EQ(get<uint32_t>(*mem, zp + 0x2d0 + 20 * 3 + 16), 1u);
    EXPECT_EQ(get<uint64_t>(*mem, zp + 0x70), 0xe0000u);
    // Identity map: PML4 -> PDPT -> PD; 2 MiB page 1 maps 2 MiB.
    EXPECT_EQ(get<uint64_t>(*mem, Layout::k_pml4) & ~0xfffull, Layout::k_pml4 + 0x1000);
    EXPECT_EQ(get<uint64_t>(*mem, Layout::k_pml4 + 0x2000 + 8), 0x200083u);
    // GDT: 64-bit code at 0x10.
    EXPECT_EQ(get<uint64_t>(*mem, s.gdt_base + 0x10), 0x00af9b000000ffffull);
}

TEST_F(BootFixture, OldProtocolUses32BitEntry)
{
    auto k = synthetic_bzimage(0x20a, 0);
    auto r = load_linux(*mem, cfg, k, "bz", {}, "");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r.value().mode, BootCpuSetup::Mode::Protected32);
    EXPECT_EQ(r.value().entry, 0x100000u);
    EXPECT_EQ(get<uint32_t>(*mem, Layout::k_zero_page + 0x218), 0u); // no initrd
    EXPECT_EQ(get<uint64_t>(*mem, Layout::k_zero_page + 0x70), 0u);  // rsdp field is 2.14+
}

TEST_F(BootFixture, BadKernelsGiveClearErrors)
{
    std::vector<uint8_t> junk(4096, 0x11);
    auto r = load_linux(*mem, cfg, junk, "junk.bin", {}, "");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "kernel 'junk.bin' is neither a bzImage nor an ELF vmlinux");
    auto r2 = load_linux(*mem, cfg, {}, "empty", {}, "");
    EXPECT_EQ(r2.error().message(), "kernel 'empty' is empty");
    auto old = synthetic_bzimage(0x204, 0);
    auto r3 = load_linux(*mem, cfg, old, "old", {}, "");
    EXPECT_EQ(r3.error().message(), "kernel 'old' uses boot protocol 2.4; Kiln needs 2.06 or newer");
    auto trunc = synthetic_bzimage(0x20f, 1, 0);
    auto r4 = load_linux(*mem, cfg, std::span(trunc).first(5 * 512), "t", {}, "");
    EXPECT_EQ(r4.error().message(), "kernel 't' is truncated (no protected-mode code after the setup sectors)");
    // A download cut short: the header's syssize says more code follows.
    auto cut = synthetic_bzimage(0x20f, 1);
    put<uint32_t>(cut, 0x1f4, 8192 / 16);
    ASSERT_TRUE(load_linux(*mem, cfg, cut, "full", {}, "").ok());
    auto r7 = load_linux(*mem, cfg, std::span(cut).first(cut.size() - 16), "cut", {}, "");
    ASSERT_FALSE(r7.ok());
    EXPECT_EQ(r7.error().message(), "kernel 'cut' is truncated (" + std::to_string(cut.size() - 16)
                                        + " bytes; its header says " + std::to_string(cut.size()) + ")");
    auto k = synthetic_bzimage(0x20f, 1);
    std::vector<uint8_t> big(200ull << 20);
    auto r5 = load_linux(*mem, cfg, k, "bz", big, "big.img");
    ASSERT_FALSE(r5.ok());
    EXPECT_EQ(r5.error().message(), "initrd 'big.img' is too large for guest RAM (200 MiB; 125 MiB available)");
    cfg.cmdline = std::string(3000, 'x');
    auto r6 = load_linux(*mem, cfg, k, "bz", {}, "");
    EXPECT_EQ(r6.error().message(), "kernel command line is too long (3000 bytes; the kernel accepts 2047)");
}

TEST_F(BootFixture, MissingFileNamesIt)
{
    auto r = load_linux_files(*mem, cfg, "/nonexistent/vmlinuz", "");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "could not load kernel '/nonexistent/vmlinuz': No such file or directory");
    EXPECT_EQ(load_linux_files(*mem, cfg, "/", "").error().message(), "could not load kernel '/': Is a directory");
    EXPECT_EQ(load_linux_files(*mem, cfg, "/dev/null", "").error().message(),
              "could not load kernel '/dev/null': not a regular file");
}

TEST_F(BootFixture, ElfPvhEntryAndStartInfo)
{
    auto k = synthetic_vmlinux(true);
    std::vector<uint8_t> initrd(5000, 0x77);
    auto r = load_linux(*mem, cfg, k, "vmlinux", initrd, "rd");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r.value().mode, BootCpuSetup::Mode::Protected32);
    EXPECT_EQ(r.value().entry, 0x1000040u);
    EXPECT_EQ(r.value().rbx, Layout::k_start_info);
    EXPECT_EQ(get<uint8_t>(*mem, 0x1000000), 0xcc);
    EXPECT_EQ(get<uint8_t>(*mem, 0x1001000), 0x00); // BSS zeroed
    uint64_t si = Layout::k_start_info;
    EXPECT_EQ(get<uint32_t>(*mem, si), 0x336ec578u);
    EXPECT_EQ(get<uint32_t>(*mem, si + 4), 1u);
    EXPECT_EQ(get<uint32_t>(*mem, si + 12), 1u);
    EXPECT_EQ(get<uint64_t>(*mem, si + 24), Layout::k_cmdline);
    EXPECT_EQ(get<uint64_t>(*mem, si + 32), 0xe0000u);
    EXPECT_EQ(get<uint32_t>(*mem, si + 48), cfg.e820.size());
    uint64_t mod = get<uint64_t>(*mem, si + 16);
    uint64_t rd = get<uint64_t>(*mem, mod);
    EXPECT_EQ(get<uint64_t>(*mem, mod + 8), 5000u);
    EXPECT_EQ(get<uint8_t>(*mem, rd + 4999), 0x77);
    uint64_t mm = get<uint64_t>(*mem, si + 40);
    EXPECT_EQ(get<uint32_t>(*mem, mm + 24 * 3 + 16), 1u);
}

TEST_F(BootFixture, ElfWithoutPvhNoteIsRefused)
{
    auto k = synthetic_vmlinux(false);
    auto r = load_linux(*mem, cfg, k, "vmlinux", {}, "");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
              "kernel 'vmlinux' is an ELF file without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    // Corrupt program header count.
    auto bad = synthetic_vmlinux(true);
    put<uint16_t>(bad, 56, 60000);
    EXPECT_EQ(load_linux(*mem, cfg, bad, "v", {}, "").error().message(),
              "kernel 'v' has a corrupt ELF program header table");
}

// Real Debian kernels, if the test guest has been built (tests/guest/build
// puts them in $KILN_GUEST_CACHE or ~/.cache/kiln-guest/KEY/);
// KILN_TEST_BZIMAGE / KILN_TEST_VMLINUX override.
std::string find_file(const char* env, const char* name)
{
    if (const char* e = getenv(env))
        return e;
    std::vector<std::string> patterns;
    if (const char* c = getenv("KILN_GUEST_CACHE"))
        patterns.push_back(std::string(c) + "/" + name);
    if (const char* home = getenv("HOME"))
        patterns.push_back(std::string(home) + "/.cache/kiln-guest/*/" + name);
    for (const std::string& pattern : patterns) {
        glob_t g;
        std::string found;
        if (glob(pattern.c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0)
            found = g.gl_pathv[0];
        globfree(&g);
        if (!found.empty())
            return found;
    }
    return {};
}

TEST(DebianKernel, BzImageLoads)
{
    std::string path = find_file("KILN_TEST_BZIMAGE", "bzImage");
    if (path.empty() || !std::ifstream(path))
        GTEST_SKIP() << "no Debian bzImage: run tests/guest/build";
    uint64_t ram = 256ull << 20;
    auto mem = GuestMemory::create(ram, pc_pci_hole_start(ram)).value();
    LinuxBootConfig cfg{"console=ttyS0", build_pc_e820(ram), pc_low_ram_bytes(ram), 0xe0000};
    auto r = load_linux_files(*mem, cfg, path, "");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r.value().mode, BootCpuSetup::Mode::Long64);
    EXPECT_EQ(r.value().entry, 0x100200u);
    EXPECT_EQ(mem->read_value<uint16_t>(Layout::k_zero_page + 0x206).value(), 0x020f);
    // Too little RAM to decompress: a clear error, not a crash.
    uint64_t small = 32ull << 20;
    auto mem2 = GuestMemory::create(small, pc_pci_hole_start(small)).value();
    LinuxBootConfig cfg2{"", build_pc_e820(small), pc_low_ram_bytes(small), 0xe0000};
    auto r2 = load_linux_files(*mem2, cfg2, path, "");
    ASSERT_FALSE(r2.ok());
    EXPECT_NE(r2.error().message().find("MiB of RAM to decompress"), std::string::npos);
}

TEST(DebianKernel, VmlinuxPvhLoads)
{
    std::string path = find_file("KILN_TEST_VMLINUX", "vmlinux");
    if (path.empty() || !std::ifstream(path))
        GTEST_SKIP() << "no Debian vmlinux: run tests/guest/build";
    uint64_t ram = 256ull << 20;
    auto mem = GuestMemory::create(ram, pc_pci_hole_start(ram)).value();
    LinuxBootConfig cfg{"console=ttyS0", build_pc_e820(ram), pc_low_ram_bytes(ram), 0xe0000};
    auto r = load_linux_files(*mem, cfg, path, "");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r.value().mode, BootCpuSetup::Mode::Protected32);
    EXPECT_GE(r.value().entry, 0x1000000u);
    EXPECT_LT(r.value().entry, 0x5000000u);
}

} // namespace
} // namespace kiln::hw::test
