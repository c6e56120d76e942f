// VmControl on the real pc board with a scripted vCPU: the run gate
// (stop/cont, -S, -no-shutdown), the events each transition emits and
// their order, quit's exit status, and what the monitor reads from the
// machine (registers, memory, PCI, chardevs) through the HMP executor.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "monitor/hmp_executor.h"
#include "system/vm.h"
#include "tests/unit/block/host_helpers.h"
#include "tests/unit/hw/synthetic_kernel.h"

namespace kiln::system {
namespace {

using monitor::MachineEvent;
using monitor::MonitorEvent;
using monitor::RunState;

class ScriptedVcpu final : public Vcpu {
public:
    using Step = std::function<VcpuExit(hw::PcMachine&)>;
    ScriptedVcpu(hw::PcMachine& m, Step step)
        : m_machine(m)
        , m_step(std::move(step))
    {
    }
    accel::x86::CpuState& state() override { return m_state; }
    void power_on_reset() override { }
    VcpuExit run(uint64_t) override
    {
        runs++;
        return m_step(m_machine);
    }
    void kick() override { }
    void wake() override { }
    const char* accel_name() const override { return "scripted"; }
    std::atomic<int> runs { 0 };
    accel::x86::CpuState m_state;

private:
    hw::PcMachine& m_machine;
    Step m_step;
};

struct VmControlTest : ::testing::Test {
    void SetUp() override
    {
        loop = EventLoop::create().value();
        cfg.kernel = "unused";
        cfg.ram_bytes = 16ull << 20;
        chardev::ChardevSpec s;
        s.kind = chardev::ChardevKind::Null;
        cfg.serials = { s };
    }
    std::unique_ptr<Vm> make(ScriptedVcpu::Step step)
    {
        auto built = build_vm(cfg, *loop, [this](int) { loop->post([this] { loop->stop(); }); });
        EXPECT_TRUE(built.ok()) << built.error().message();
        auto v = std::move(built).value();
        auto vcpu = std::make_unique<ScriptedVcpu>(*v->machine, std::move(step));
        scripted = vcpu.get();
        v->vcpu = std::move(vcpu);
        v->control->set_event_sink([this](const MachineEvent& e) { events.push_back(e); });
        return v;
    }
    // Runs `body` on the loop once the run has started, then waits for the end.
    int run(Vm& vm, std::function<void()> body)
    {
        loop->schedule(std::move(body));
        return run_vm(vm, *loop);
    }
    std::vector<MonitorEvent> kinds() const
    {
        std::vector<MonitorEvent> out;
        for (auto& e : events)
            out.push_back(e.kind);
        return out;
    }
    static std::string field(const MachineEvent& e, const std::string& key)
    {
        for (auto& f : e.data)
            if (f.key == key)
                return f.type == monitor::EventField::Type::Bool ? (f.bool_value ? "true" : "false") : f.string_value;
        return "<none>";
    }

    std::unique_ptr<EventLoop> loop;
    MachineConfig cfg;
    ScriptedVcpu* scripted = nullptr;
    std::vector<MachineEvent> events;
};

VcpuExit busy(hw::PcMachine&) { return VcpuExit::Budget; }

TEST_F(VmControlTest, StopParksTheVcpuAndContResumesIt)
{
    auto vm = make(busy);
    int runs_at_stop = -1, runs_later = -2;
    bool clock_ran_while_paused = true;
    int status = run(*vm, [&] {
        ASSERT_TRUE(vm->control->stop().ok());
        EXPECT_EQ(vm->control->run_state(), RunState::Paused);
        runs_at_stop = scripted->runs;
        clock_ran_while_paused = vm->machine->clock().running();
        // Let the loop spin a while: the parked vCPU must not run.
        loop->add_timer_ns(30000000, [&] {
            runs_later = scripted->runs;
            ASSERT_TRUE(vm->control->cont().ok());
            EXPECT_EQ(vm->control->run_state(), RunState::Running);
            loop->add_timer_ns(10000000, [&] { vm->control->quit(); });
        });
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(runs_at_stop, runs_later);
    EXPECT_FALSE(clock_ran_while_paused);
    EXPECT_GT(scripted->runs.load(), runs_later);
    ASSERT_EQ(
        kinds(), (std::vector<MonitorEvent> { MonitorEvent::Stop, MonitorEvent::Resume, MonitorEvent::Shutdown }));
    EXPECT_EQ(field(events[2], "reason"), "host-qmp-quit");
    EXPECT_EQ(field(events[2], "guest"), "false");
}

TEST_F(VmControlTest, StartPausedIsPrelaunchUntilCont)
{
    cfg.start_paused = true;
    auto vm = make(busy);
    RunState before = RunState::Running;
    int status = run(*vm, [&] {
        before = vm->control->run_state();
        EXPECT_EQ(scripted->runs.load(), 0);
        EXPECT_TRUE(vm->control->stop().ok()); // no change, no STOP
        EXPECT_EQ(vm->control->run_state(), RunState::Prelaunch);
        ASSERT_TRUE(vm->control->cont().ok());
        loop->add_timer_ns(10000000, [&] { vm->control->quit(); });
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(before, RunState::Prelaunch);
    EXPECT_GT(scripted->runs.load(), 0);
    EXPECT_EQ(kinds(), (std::vector<MonitorEvent> { MonitorEvent::Resume, MonitorEvent::Shutdown }));
}

TEST_F(VmControlTest, GuestPowerOffSendsShutdownAndEndsTheRun)
{
    auto vm = make([](hw::PcMachine& m) {
        m.pio_write(0x604, 2, 1u << 13); // S5
        return VcpuExit::Budget;
    });
    EXPECT_EQ(run(*vm, [] {}), 0);
    // The event was posted from the vCPU thread before the loop stopped.
    ASSERT_EQ(kinds(), (std::vector<MonitorEvent> { MonitorEvent::Shutdown }));
    EXPECT_EQ(field(events[0], "guest"), "true");
    EXPECT_EQ(field(events[0], "reason"), "guest-shutdown");
}

TEST_F(VmControlTest, NoShutdownPausesInShutdownStateAndContNeedsAReset)
{
    cfg.no_shutdown = true;
    std::atomic<bool> powered_off { false };
    auto vm = make([&](hw::PcMachine& m) {
        if (!powered_off.exchange(true))
            m.pio_write(0x604, 2, 1u << 13);
        return VcpuExit::Budget;
    });
    RunState state = RunState::Running;
    std::string cont_error;
    int status = run(*vm, [&] {
        loop->add_timer_ns(30000000, [&] {
            state = vm->control->run_state();
            auto r = vm->control->cont();
            cont_error = r.ok() ? "" : r.error().message();
            vm->control->quit();
        });
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(state, RunState::Shutdown);
    EXPECT_EQ(cont_error, "Resetting the Virtual Machine is required");
    EXPECT_EQ(
        kinds(), (std::vector<MonitorEvent> { MonitorEvent::Shutdown, MonitorEvent::Stop, MonitorEvent::Shutdown }));
}

TEST_F(VmControlTest, GuestResetSendsResetAndMonitorResetIsNotReportedTwice)
{
    // A reset reloads the kernel: give it a loadable one.
    std::string kernel = "/tmp/kiln-vm-control-test-" + std::to_string(getpid()) + ".vmlinux";
    {
        auto bytes = hw::test::synthetic_vmlinux(true);
        std::ofstream f(kernel, std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    cfg.kernel = kernel;
    cfg.ram_bytes = 64ull << 20; // the ELF loads at 16 MiB
    std::atomic<int> step { 0 };
    auto vm = make([&](hw::PcMachine& m) {
        if (step.fetch_add(1) == 0)
            m.pio_write(0x64, 1, 0xfe); // i8042 reset
        return VcpuExit::Budget;
    });
    int status = run(*vm, [&] {
        loop->add_timer_ns(20000000, [&] {
            ASSERT_TRUE(vm->control->system_reset().ok());
            loop->add_timer_ns(20000000, [&] { vm->control->quit(); });
        });
    });
    EXPECT_EQ(status, 0);
    ASSERT_EQ(
        kinds(), (std::vector<MonitorEvent> { MonitorEvent::Reset, MonitorEvent::Reset, MonitorEvent::Shutdown }));
    EXPECT_EQ(field(events[0], "reason"), "guest-reset");
    EXPECT_EQ(field(events[1], "reason"), "host-qmp-system-reset");
    unlink(kernel.c_str());
}

TEST_F(VmControlTest, GuestResetUnderNoRebootEndsTheRun)
{
    cfg.no_reboot = true;
    auto vm = make([](hw::PcMachine& m) {
        m.pio_write(0x64, 1, 0xfe);
        return VcpuExit::Budget;
    });
    EXPECT_EQ(run(*vm, [] {}), 0);
    ASSERT_EQ(kinds(), (std::vector<MonitorEvent> { MonitorEvent::Shutdown }));
    EXPECT_EQ(field(events[0], "reason"), "guest-reset");
}

TEST_F(VmControlTest, PowerdownPressesTheAcpiPowerButton)
{
    auto vm = make(busy);
    uint16_t status_bits = 0;
    int status = run(*vm, [&] {
        vm->machine->pio_write(0x602, 2, hw::AcpiPm::k_sts_pwrbtn); // PWRBTN_EN (takes the lock)
        ASSERT_TRUE(vm->control->system_powerdown().ok());
        status_bits = uint16_t(vm->machine->pio_read(0x600, 2));
        vm->control->quit();
    });
    EXPECT_EQ(status, 0);
    EXPECT_TRUE(status_bits & hw::AcpiPm::k_sts_pwrbtn);
    EXPECT_EQ(kinds().front(), MonitorEvent::Powerdown);
}

TEST_F(VmControlTest, BlockErrorStopsWithIoErrorAfterBlockIoErrorEvent)
{
    auto vm = make(busy);
    RunState state = RunState::Running;
    int status = run(*vm, [&] {
        vm->control->block_error_stop("virtio0", hw::IoDirection::Write, true, "No space left on device");
        state = vm->control->run_state();
        vm->control->quit();
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(state, RunState::IoError);
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events[0].kind, MonitorEvent::BlockIoError);
    EXPECT_EQ(field(events[0], "device"), "virtio0");
    EXPECT_EQ(field(events[0], "nospace"), "true");
    EXPECT_EQ(field(events[0], "action"), "stop");
    EXPECT_EQ(events[1].kind, MonitorEvent::Stop);
}

TEST_F(VmControlTest, MonitorReadsTheMachine)
{
    cfg.start_paused = true;
    cfg.name = "unitvm";
    auto vm = make(busy);
    scripted->m_state.rip = 0x1234;
    scripted->m_state.cr0 = 0x11;
    ASSERT_TRUE(vm->machine->memory().write(0x5000, "\x90\x90\xc3", 3).ok());
    monitor::CommandTable table = monitor::build_command_table();
    monitor::HmpExecutor hmp(table, *vm->control);
    std::string status, name, regs, xp, pci, bad;
    int rc = run(*vm, [&] {
        status = hmp.execute("info status");
        name = hmp.execute("info name");
        regs = hmp.execute("info registers");
        xp = hmp.execute("xp /3xb 0x5000");
        pci = hmp.execute("info pci");
        bad = hmp.execute("xp /1xb 0xfee00000000");
        vm->control->quit();
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(status, "VM status: paused (prelaunch)\n");
    EXPECT_EQ(name, "unitvm\n");
    EXPECT_NE(regs.find("EIP=00001234"), std::string::npos) << regs;
    EXPECT_EQ(xp, "0000000000005000: 0x90 0x90 0xc3\n");
    EXPECT_NE(pci.find("Host bridge: PCI device 8086:1237"), std::string::npos) << pci;
    EXPECT_NE(bad.find("Cannot access memory"), std::string::npos) << bad;
}

// The monitor's commit on a running VM: a qcow2 drive over a raw backing, a
// drive without a backing file, a snapshot=on drive over the user's image.
std::string file_text(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

hw::DriveConfig drive(const std::string& id, const std::string& file, const std::string& format, bool snapshot)
{
    hw::DriveConfig d;
    d.id = id;
    d.file = file;
    d.format = format;
    d.snapshot = snapshot;
    if (id.rfind("virtio", 0) == 0)
        d.interface = hw::DriveInterface::Virtio;
    return d;
}

TEST_F(VmControlTest, CommitWritesTheOverlayIntoTheBackingFileWhileRunning)
{
    char tmpl[] = "/tmp/kiln-commit-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    auto [rc0, out0] = block::test::run_command("cd " + dir + " && qemu-img create -q -f raw base.raw 2M && qemu-io -f raw -c "
                                   "'write -P 0x11 0 2M' base.raw && qemu-img create -q -f qcow2 -b base.raw -F raw "
                                   "top.qcow2 && qemu-img create -q -f raw plain.raw 1M && qemu-img create -q -f raw "
                                   "user.raw 1M");
    ASSERT_EQ(rc0, 0) << out0;
    cfg.disks.drives = { drive("ide0-hd0", dir + "/top.qcow2", "qcow2", false),
        drive("ide0-hd1", dir + "/plain.raw", "raw", false), drive("virtio0", dir + "/user.raw", "raw", true) };
    for (int i = 0; i < 3; ++i) {
        hw::DiskDeviceConfig dev;
        dev.drive_id = cfg.disks.drives[i].id;
        dev.kind = i == 2 ? hw::DiskDeviceKind::VirtioBlkPci : hw::DiskDeviceKind::IdeHd;
        if (i < 2) {
            dev.ide_bus = 0;
            dev.ide_unit = i;
        }
        cfg.disks.devices.push_back(dev);
    }
    auto vm = make(busy);
    monitor::CommandTable table = monitor::build_command_table();
    monitor::HmpExecutor hmp(table, *vm->control);
    auto write = [&](const std::string& id, uint64_t off, uint64_t bytes, uint8_t byte) {
        for (hw::Drive* d : vm->disks->drives())
            if (d->id() == id) {
                std::vector<uint8_t> buf(bytes, byte);
                auto r = loop->run_until_complete(d->backend()->write(off, block::QIov(buf.data(), bytes)));
                EXPECT_TRUE(r.ok());
            }
    };
    std::string first, none, locked, status_after, all;
    int runs_after_error = 0, runs_at_error = 0;
    int rc = run(*vm, [&] {
        write("ide0-hd0", 0, 65536, 0xab);
        write("virtio0", 4096, 4096, 0xcd);
        first = hmp.execute("commit ide0-hd0");
        none = hmp.execute("commit ide0-hd1");
        // Another open of the backing refusing writers (as a read-only
        // qemu-io holds): the commit fails, nothing changes, the VM runs on.
        write("ide0-hd0", 65536, 4096, 0xef);
        int other = block::test::hold_lock_byte(dir + "/base.raw", 201);
        EXPECT_GE(other, 0);
        locked = hmp.execute("commit ide0-hd0");
        runs_at_error = scripted->runs;
        for (int i = 0; i < 2000 && scripted->runs == runs_at_error; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        runs_after_error = scripted->runs;
        status_after = hmp.execute("info status");
        ::close(other);
        all = hmp.execute("commit all");
        vm->control->quit();
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(first, "");
    EXPECT_EQ(none, "'commit' error for 'ide0-hd1': Operation not supported\n");
    EXPECT_EQ(locked, "'commit' error for 'ide0-hd0': Permission denied\n");
    EXPECT_GT(runs_after_error, runs_at_error); // the vCPU was let go again
    EXPECT_EQ(status_after, "VM status: running\n");
    EXPECT_EQ(all, "");
    vm.reset(); // closes the images (and their locks)

    std::string base = file_text(dir + "/base.raw");
    ASSERT_EQ(base.size(), 2u << 20);
    EXPECT_EQ(base.substr(0, 65536), std::string(65536, '\xab'));
    EXPECT_EQ(base.substr(65536, 4096), std::string(4096, '\xef'));
    EXPECT_EQ(base.substr(69632, 4096), std::string(4096, '\x11'));
    std::string user = file_text(dir + "/user.raw");
    EXPECT_EQ(user.substr(4096, 4096), std::string(4096, '\xcd')); // snapshot=on: now permanent
    EXPECT_EQ(user.substr(0, 4096), std::string(4096, '\0'));
    EXPECT_EQ(file_text(dir + "/plain.raw"), std::string(1 << 20, '\0'));
    auto [crc, cout] = block::test::run_command("qemu-img check -f qcow2 " + dir + "/top.qcow2");
    EXPECT_EQ(crc, 0) << cout;
    auto [mrc, map] = block::test::run_command("qemu-img compare -f qcow2 -F raw " + dir + "/top.qcow2 " + dir + "/base.raw");
    EXPECT_EQ(mrc, 0) << map;
    auto [arc, alloc] = block::test::run_command("qemu-img map --output=json -f qcow2 " + dir + "/top.qcow2");
    EXPECT_EQ(alloc.find("\"depth\": 0"), std::string::npos) << alloc; // the top is empty again
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

} // namespace
} // namespace kiln::system
