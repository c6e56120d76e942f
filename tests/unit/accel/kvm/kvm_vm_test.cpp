// /dev/kvm access, VM creation, memory slots (RAM, read-only ROM, the
// reserved TSS/identity-map pages) and dirty-page logging.
#include <fcntl.h>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "accel/kvm/kvm_vm.h"
#include "accel/kvm/private/kvm_abi.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::accel::kvm {
namespace {

using test::FakeVcpuHost;

TEST(KvmAbi, FlexibleArrayStructsUseTheKernelsLayout)
{
    // The kernel (C) puts the arrays right after the fixed fields.
    EXPECT_EQ(sizeof(abi::MsrsHeader), 8u);
    EXPECT_EQ(sizeof(abi::Cpuid2Header), 8u);
    EXPECT_EQ(sizeof(abi::MsrListHeader), 4u);
    EXPECT_EQ(_IOC_SIZE(abi::k_get_msrs), 8u);
    EXPECT_EQ(_IOC_SIZE(abi::k_set_cpuid2), 8u);
    EXPECT_EQ(_IOC_SIZE(abi::k_get_xsave), 4096u);
    abi::MsrBuffer b(3);
    EXPECT_EQ(reinterpret_cast<uint8_t*>(&b.entry(0)) - reinterpret_cast<uint8_t*>(b.hdr()), 8);
    EXPECT_EQ(b.hdr()->nmsrs, 3u);
}

TEST(KvmDevice, MissingDeviceNamesTheModuleAndErrno)
{
    auto dev = KvmDevice::open("/nonexistent/kvm");
    ASSERT_FALSE(dev.ok());
    EXPECT_EQ(dev.error().message(), "Could not access KVM kernel module: No such file or directory");
    EXPECT_EQ(dev.error().errno_value(), ENOENT);
}

TEST(KvmDevice, NotAKvmDeviceIsRefused)
{
    auto dev = KvmDevice::open("/dev/null");
    ASSERT_FALSE(dev.ok());
    EXPECT_NE(dev.error().message().find("'/dev/null' is not a KVM device"), std::string::npos)
        << dev.error().message();
}

TEST(KvmDevice, OpensWithApiVersion12)
{
    std::string why;
    auto dev = test::open_kvm(why);
    if (!dev)
        GTEST_SKIP() << why;
    EXPECT_GT(dev->vcpu_mmap_bytes(), 0u);
    EXPECT_GT(dev->check_extension(KVM_CAP_USER_MEMORY), 0);
}

TEST(KvmDevice, HardwareVirtualizationComesFromTheCpuinfoFlags)
{
    EXPECT_TRUE(cpuinfo_has_hardware_virtualization("processor\t: 0\nflags\t\t: fpu vme vmx sse\n"));
    EXPECT_TRUE(cpuinfo_has_hardware_virtualization("processor\t: 0\nflags\t\t: fpu svm\nbugs\t: x\n"));
    // Whole words only, and only the flags line.
    EXPECT_FALSE(cpuinfo_has_hardware_virtualization("processor\t: 0\nflags\t\t: fpu vmxx svm_lock\n"));
    EXPECT_FALSE(cpuinfo_has_hardware_virtualization("processor\t: 0\nvmx flags\t: svm\nflags\t\t: fpu\n"));
    EXPECT_FALSE(cpuinfo_has_hardware_virtualization(""));
}

std::unique_ptr<FakeVcpuHost> host_with(uint64_t ram_bytes)
{
    auto mem = hw::GuestMemory::create(ram_bytes, ram_bytes);
    EXPECT_TRUE(mem.ok());
    return std::make_unique<FakeVcpuHost>(std::move(mem).value());
}

TEST(KvmVm, MapsEveryRegionAsASlot)
{
    KILN_REQUIRE_KVM();
    auto host = host_with(1 << 20);
    std::vector<uint8_t> rom(8192, 0x90);
    ASSERT_TRUE(host->memory().add_rom(0xfffe0000, rom, "bios").ok());
    auto guest = test::make_kvm_guest(std::move(host));
    ASSERT_TRUE(guest.ok()) << guest.error().message();
    const auto& slots = guest->accel->vm().slots();
    ASSERT_EQ(slots.size(), 2u);
    EXPECT_EQ(slots[0].guest_base, 0u);
    EXPECT_EQ(slots[0].size_bytes, 1u << 20);
    EXPECT_FALSE(slots[0].read_only);
    EXPECT_EQ(slots[1].guest_base, 0xfffe0000u);
    EXPECT_TRUE(slots[1].read_only);
    EXPECT_EQ(guest->accel->vm().slot_for(0xfffe1000), &slots[1]);
    EXPECT_EQ(guest->accel->vm().slot_for(0xe0000000), nullptr); // MMIO hole
}

TEST(KvmVm, ClockCanBeSetAndRead)
{
    KILN_REQUIRE_KVM();
    auto guest = test::make_kvm_guest(host_with(1 << 20));
    ASSERT_TRUE(guest.ok()) << guest.error().message();
    ASSERT_TRUE(guest->accel->vm().set_clock_ns(5'000'000'000'000ull).ok());
    auto ns = guest->accel->vm().clock_ns();
    ASSERT_TRUE(ns.ok()) << ns.error().message();
    EXPECT_GE(*ns, 5'000'000'000'000ull);
    EXPECT_LT(*ns, 5'000'000'000'000ull + 60'000'000'000ull); // it runs on, but from there
}

TEST(KvmVm, RomAddedLaterIsMappedBySync)
{
    KILN_REQUIRE_KVM();
    auto guest = test::make_kvm_guest(host_with(1 << 20));
    ASSERT_TRUE(guest.ok()) << guest.error().message();
    std::vector<uint8_t> rom(4096, 0xf4);
    ASSERT_TRUE(guest->host->memory().add_rom(0xc0000000, rom, "optionrom").ok());
    ASSERT_TRUE(guest->accel->vm().sync_memory().ok());
    ASSERT_TRUE(guest->accel->vm().sync_memory().ok()); // idempotent
    EXPECT_EQ(guest->accel->vm().slots().size(), 2u);
}

TEST(KvmVm, RegionOverTheReservedPagesIsRefused)
{
    KILN_REQUIRE_KVM();
    auto host = host_with(1 << 20);
    std::vector<uint8_t> rom(4096, 0);
    ASSERT_TRUE(host->memory().add_rom(k_tss_gpa, rom, "bad").ok());
    auto guest = test::make_kvm_guest(std::move(host));
    ASSERT_FALSE(guest.ok());
    EXPECT_NE(
        guest.error().message().find("overlaps the pages KVM reserves at 0xfeffc000-0xfeffffff"), std::string::npos)
        << guest.error().message();
}

TEST(KvmVm, GuestWritesToRomAreDroppedAndReadsSeeIt)
{
    KILN_REQUIRE_KVM();
    auto host = host_with(1 << 20);
    std::vector<uint8_t> rom(4096, 0);
    rom[0] = 0xdd, rom[1] = 0xcc, rom[2] = 0xbb, rom[3] = 0xaa;
    ASSERT_TRUE(host->memory().add_rom(0x100000, rom, "rom").ok());
    // 32-bit flat code: write the ROM, read it back, halt.
    // clang-format off
    const std::vector<uint8_t> code = {
        0xc7, 0x05, 0x00, 0x00, 0x10, 0x00, 0x78, 0x56, 0x34, 0x12, // mov DWORD PTR ds:0x100000,0x12345678
        0xa1, 0x00, 0x00, 0x10, 0x00,                               // mov eax,ds:0x100000
        0xf4,                                                       // hlt
    };
    // clang-format on
    ASSERT_TRUE(host->memory().write(0x1000, code.data(), code.size()).ok());
    test::Payload gdt_only = test::payload("protected_mode_mmio");
    for (auto& b : gdt_only.memory) {
        if (b.gpa == 0x500) {
            ASSERT_TRUE(host->memory().write(b.gpa, b.bytes.data(), b.bytes.size()).ok());
        }
    }
    auto guest = test::make_kvm_guest(std::move(host));
    ASSERT_TRUE(guest.ok()) << guest.error().message();
    if (!guest->accel->vm().read_only_memory_supported())
        GTEST_SKIP() << "KVM_CAP_READONLY_MEM is not available";
    ASSERT_TRUE(guest->vcpu->set_state(test::flat_protected_mode_state(0x1000)).ok());
    auto r = test::run_with_limit(*guest->vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    EXPECT_EQ(*r.exit, VcpuExit::Stopped);
    EXPECT_EQ(guest->vcpu->state().gpr[x86::k_rax], 0xaabbccddu);
    EXPECT_TRUE(guest->host->mmio.empty()); // the dropped write never reached the MMIO bus
    auto span = guest->host->memory().host_span(0x100000, 4);
    ASSERT_TRUE(span.ok());
    EXPECT_EQ((*span)[0], 0xdd);
}

TEST(KvmVm, DirtyLogReportsPagesTheGuestWrote)
{
    KILN_REQUIRE_KVM();
    const test::Payload& p = test::payload("real_mode_pio"); // REP INSB writes 0x9100..0x9103
    auto guest = test::make_kvm_guest(test::make_payload_host(p));
    ASSERT_TRUE(guest.ok()) << guest.error().message();
    KvmVm& vm = guest->accel->vm();
    EXPECT_FALSE(vm.get_dirty_log(0).ok()); // not enabled yet
    EXPECT_FALSE(vm.set_dirty_logging(7, true).ok());
    ASSERT_TRUE(vm.set_dirty_logging(0, true).ok());
    auto before = vm.get_dirty_log(0);
    ASSERT_TRUE(before.ok()) << before.error().message();
    EXPECT_EQ(before->size(), (test::k_payload_ram_bytes / 4096 + 63) / 64);

    ASSERT_TRUE(guest->vcpu->set_state(p.initial).ok());
    auto r = test::run_with_limit(*guest->vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    auto after = vm.get_dirty_log(0);
    ASSERT_TRUE(after.ok()) << after.error().message();
    EXPECT_TRUE((*after)[0] & (1ull << 9)) << "page 0x9000 written by REP INSB";
    EXPECT_FALSE((*after)[0] & (1ull << 0x30)) << "page 0x30000 was never touched";
    auto again = vm.get_dirty_log(0);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE((*again)[0] & (1ull << 9)) << "the log is cleared when read";
    ASSERT_TRUE(vm.set_dirty_logging(0, false).ok());
}

} // namespace
} // namespace kiln::accel::kvm
