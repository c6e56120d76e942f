// VmControl: the running VM as the monitor sees it (monitor::MachineControl)
// and the run control the vCPU thread obeys (pause, resume, exit). It also
// receives the disks' werror/rerror=stop requests (hw::BlockErrorHost), so
// a failed request pauses the VM with BLOCK_IO_ERROR and STOP as in QEMU.
//
// Threads: monitor calls and event emission happen on the main loop; the
// vCPU thread only calls the vcpu_* and guest_* hooks, which post events
// to the main loop. Pausing is a handshake: stop() returns once the vCPU
// thread has parked, so `info registers` after `stop` sees a quiet CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <sys/types.h>

#include "hw/block/drive.h"
#include "monitor/machine_control.h"
#include "util/event_loop.h"

namespace kiln::system {

struct Vm;

class VmControl final : public monitor::MachineControl, public hw::BlockErrorHost {
public:
    // `vm` must outlive this object; its machine, vCPU and disks are looked
    // up lazily (they are created after the control).
    VmControl(Vm& vm, EventLoop& loop);

    // Run-loop wiring (system/run.cpp).
    // How the run ends: the loop stops with this exit status.
    void set_exit(std::function<void(int)> exit) { m_exit = std::move(exit); }
    // The VM starts paused (-S): prelaunch until `cont`.
    void start_paused();
    // vCPU thread: parks while paused; false once the run is ending.
    bool vcpu_wait_until_running();
    void vcpu_thread_started();
    void vcpu_thread_exited();
    // Main thread: the run is ending; a parked vCPU wakes and returns.
    void end_run();
    // vCPU thread: the guest powered off / reset itself. guest_shutdown()
    // returns true when the vCPU should park (-no-shutdown) instead of
    // ending the run.
    bool guest_shutdown();
    void guest_reset();
    // -no-reboot: the guest's reset ends the run (SHUTDOWN, "guest-reset").
    void guest_reset_ends_run();

    // Chardev list for `info chardev` (system/ fills it while building).
    void add_chardev(monitor::ChardevInfo info) { m_chardevs.push_back(std::move(info)); }

    // monitor::MachineControl
    monitor::RunState run_state() const override;
    Result<void> stop() override;
    Result<void> cont() override;
    Result<void> system_reset() override;
    Result<void> system_powerdown() override;
    void quit() override;
    monitor::VersionInfo version() const override;
    std::optional<std::string> name() const override;
    monitor::KvmInfo kvm() const override;
    std::vector<monitor::CpuInfo> cpus() const override;
    Result<monitor::CpuRegisters> cpu_registers(int64_t cpu_index) override;
    std::vector<monitor::BlockDeviceInfo> block_devices() const override;
    std::vector<monitor::ChardevInfo> chardevs() const override { return m_chardevs; }
    std::vector<monitor::PciDeviceInfo> pci_devices() const override;
    std::vector<monitor::MemoryTreeSection> memory_tree() const override;
    monitor::QtreeBus device_tree() const override;
    Result<void> read_memory(
        monitor::AddressKind kind, int64_t cpu_index, uint64_t address, void* buffer, uint64_t length_bytes) override;
    Result<void> send_keys(const std::vector<monitor::KeyPress>& keys, int64_t hold_time_ms) override;
    Result<void> commit(const std::string& device) override;
    Result<void> eject(const std::string& device, bool force) override;
    Result<void> change_medium(const std::string& device, const std::string& filename, const std::string& format,
        monitor::MediumMode mode, bool force) override;
    Result<void> block_resize(const std::string& device, uint64_t size_bytes) override;
    void set_event_sink(monitor::EventSink sink) override { m_sink = std::move(sink); }

    // hw::BlockErrorHost
    void block_error_stop(
        const std::string& drive_id, hw::IoDirection dir, bool nospace, const std::string& reason) override;
    void block_error_passed(const std::string& drive_id, hw::IoDirection dir, bool ignored, bool nospace,
        const std::string& reason) override;

private:
    // BLOCK_IO_ERROR with QEMU's fields; action is "stop", "report" or "ignore".
    void emit_block_io_error(const std::string& drive_id, hw::IoDirection dir, const char* action, bool nospace,
        const std::string& reason);
    // Parks the vCPU without changing the run state (register reads).
    void park_vcpu();
    void unpark_vcpu();
    // Pauses into `state` (emits STOP if it was running).
    void pause_into(monitor::RunState state);
    void emit(monitor::MonitorEvent kind, std::vector<monitor::EventField> data = {});
    // From the vCPU thread: emitted on the main loop.
    void post_emit(monitor::MonitorEvent kind, std::vector<monitor::EventField> data = {});
    hw::Drive* find_drive(const std::string& device) const;
    Result<void> commit_drive(hw::Drive& drive);

    Vm& m_vm;
    EventLoop& m_loop;
    std::function<void(int)> m_exit;
    monitor::EventSink m_sink;
    std::vector<monitor::ChardevInfo> m_chardevs;
    std::atomic<monitor::RunState> m_state { monitor::RunState::Running };
    std::atomic<pid_t> m_vcpu_tid { 0 };
    // Per drive id: the tray was opened by eject, and the last error.
    std::map<std::string, bool> m_tray_open;
    std::map<std::string, std::string> m_io_status;

    // The gate the vCPU thread waits at.
    std::mutex m_gate_lock;
    std::condition_variable m_gate;
    bool m_run_allowed = true; // false: the vCPU parks
    bool m_parked = false;
    bool m_ending = false;
    bool m_vcpu_gone = false;
    int m_park_depth = 0; // nested park_vcpu() calls
};

} // namespace kiln::system
