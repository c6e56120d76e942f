// kiln end to end, minus argv: config -> build -> realize -> run with the
// real accelerator, on synthetic kernels that print on COM1 and power off
// through ACPI. Exercises direct boot (64-bit bzImage entry and PVH), the
// boot CPU state, port I/O through the board, serial output to a chardev
// and guest power-off ending the run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "system/vm.h"
#include "tests/unit/system/file_text.h"
#include "tests/unit/hw/synthetic_kernel.h"

namespace kiln::system {
namespace {

using hw::test::serial_then_poweroff_code;

struct BootFixture : ::testing::Test {
    void SetUp() override
    {
        loop = EventLoop::create().value();
        std::string base = "/tmp/kiln-boot-test-" + std::to_string(getpid());
        kernel_path = base + ".kernel";
        out_path = base + ".out";
        cfg.ram_bytes = 32ull << 20;
        chardev::ChardevSpec s;
        s.kind = chardev::ChardevKind::File;
        s.path = out_path;
        cfg.serials = {s};
        cfg.kernel = kernel_path;
    }
    void TearDown() override
    {
        unlink(kernel_path.c_str());
        unlink(out_path.c_str());
    }
    void write_kernel(const std::vector<uint8_t>& k)
    {
        std::ofstream f(kernel_path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(k.data()), std::streamsize(k.size()));
    }
    // Runs the VM; returns false (and skips) if no accelerator is built.
    bool boot(int& status)
    {
        auto vm = build_vm(cfg, *loop, [this](int) { loop->post([this] { loop->stop(); }); });
        EXPECT_TRUE(vm.ok()) << vm.error().message();
        if (!vm.ok())
            return false;
        auto r = realize_vm(*vm.value());
        if (!r.ok() && r.error().kind() == ErrorKind::NotSupported) {
            skip_reason = r.error().message();
            return false;
        }
        EXPECT_TRUE(r.ok()) << r.error().message();
        if (!r.ok())
            return false;
        // A guard so a broken CPU cannot hang the suite.
        loop->add_timer_ns(60ull * 1000000000ull, [this] { loop->stop(); });
        status = run_vm(*vm.value(), *loop);
        return true;
    }
    std::string output() { return test::file_text(out_path); }
    std::unique_ptr<EventLoop> loop;
    std::string kernel_path, out_path, skip_reason;
    MachineConfig cfg;
};

TEST_F(BootFixture, BzImage64BitEntryPrintsAndPowersOff)
{
    write_kernel(hw::test::synthetic_bzimage(0x20f, 0x1, 8192, serial_then_poweroff_code("bz64 ok\n")));
    int status = -1;
    if (!boot(status))
        GTEST_SKIP() << skip_reason;
    EXPECT_EQ(status, 0);
    EXPECT_EQ(output(), "bz64 ok\n");
}

TEST_F(BootFixture, PvhEntryPrintsAndPowersOff)
{
    write_kernel(hw::test::synthetic_vmlinux(true, serial_then_poweroff_code("pvh ok\n")));
    int status = -1;
    if (!boot(status))
        GTEST_SKIP() << skip_reason;
    EXPECT_EQ(status, 0);
    EXPECT_EQ(output(), "pvh ok\n");
}

TEST_F(BootFixture, PvhUnderKvmWithKilnsInterruptControllers)
{
    // KVM runs the CPU; port I/O and interrupts go through the same board.
    write_kernel(hw::test::synthetic_vmlinux(true, serial_then_poweroff_code("kvm ok\n")));
    cfg.accels = {AccelKind::Kvm};
    cfg.cpu_model = "qemu64";
    int status = -1;
    if (!boot(status))
        GTEST_SKIP() << skip_reason;
    EXPECT_EQ(status, 0);
    EXPECT_EQ(output(), "kvm ok\n");
}

TEST_F(BootFixture, GuestResetWithNoRebootEndsTheRun)
{
    // out 0x64, 0xfe: the i8042 reset line.
    std::vector<uint8_t> code = {0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd};
    write_kernel(hw::test::synthetic_vmlinux(true, code));
    cfg.no_reboot = true;
    int status = -1;
    if (!boot(status))
        GTEST_SKIP() << skip_reason;
    EXPECT_EQ(status, 0);
}

TEST_F(BootFixture, GuestResetRebootsIntoTheKernelAgain)
{
    // First boot: mark CMOS byte 0x40 (CMOS RAM survives a reset) and reset
    // through the i8042. Second boot: print and power off.
    std::vector<uint8_t> code = {0xb0, 0x40, 0xe6, 0x70, // index 0x40
                                 0xe4, 0x71,             // in al, 0x71
                                 0x84, 0xc0, 0x75, 0x09, // test al, al; jnz second
                                 0xb0, 0x01, 0xe6, 0x71, // mark
                                 0xb0, 0xfe, 0xe6, 0x64, // reset
                                 0xf4};
    auto second = serial_then_poweroff_code("rebooted\n");
    code.insert(code.end(), second.begin(), second.end());
    write_kernel(hw::test::synthetic_vmlinux(true, code));
    int status = -1;
    if (!boot(status))
        GTEST_SKIP() << skip_reason;
    EXPECT_EQ(status, 0);
    EXPECT_EQ(output(), "rebooted\n");
}

} // namespace
} // namespace kiln::system
