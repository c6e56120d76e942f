// Run control, events, identity, CPUs and guest memory. The block, PCI,
// memory-tree, device-tree and keyboard parts are in machine_control_info.cpp.
#include "system/machine_control_impl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include <sys/syscall.h>

#include "system/guest_page_walk.h"
#include "system/vm.h"
#include "util/log.h"

namespace kiln::system {

using monitor::EventField;
using monitor::MonitorEvent;
using monitor::RunState;

namespace {

EventField string_field(std::string key, std::string value)
{
    EventField f;
    f.key = std::move(key);
    f.type = EventField::Type::String;
    f.string_value = std::move(value);
    return f;
}

EventField bool_field(std::string key, bool value)
{
    EventField f;
    f.key = std::move(key);
    f.type = EventField::Type::Bool;
    f.bool_value = value;
    return f;
}

// QEMU's SHUTDOWN/RESET data: {"guest": ..., "reason": ...}.
std::vector<EventField> cause(bool guest, const char* reason)
{
    return { bool_field("guest", guest), string_field("reason", reason) };
}

} // namespace

VmControl::VmControl(Vm& vm, EventLoop& loop)
    : m_vm(vm)
    , m_loop(loop)
{
}

void VmControl::start_paused()
{
    {
        std::lock_guard lk(m_gate_lock);
        m_state = RunState::Prelaunch;
        m_run_allowed = false;
    }
    if (m_vm.machine) {
        hw::MachineLock lk(*m_vm.machine);
        m_vm.machine->clock().pause();
    }
}

// ---- the vCPU thread's side ----

void VmControl::vcpu_thread_started() { m_vcpu_tid = pid_t(syscall(SYS_gettid)); }

void VmControl::vcpu_thread_exited()
{
    std::lock_guard lk(m_gate_lock);
    m_vcpu_gone = true;
    m_gate.notify_all();
}

bool VmControl::vcpu_wait_until_running()
{
    std::unique_lock lk(m_gate_lock);
    if (m_run_allowed || m_ending)
        return !m_ending;
    m_parked = true;
    m_gate.notify_all();
    m_gate.wait(lk, [&] { return m_run_allowed || m_ending; });
    m_parked = false;
    return !m_ending;
}

void VmControl::end_run()
{
    std::lock_guard lk(m_gate_lock);
    m_ending = true;
    m_gate.notify_all();
}

bool VmControl::guest_shutdown()
{
    post_emit(MonitorEvent::Shutdown, cause(true, "guest-shutdown"));
    if (!m_vm.config.no_shutdown)
        return false;
    // -no-shutdown: QEMU stops in the "shutdown" state; STOP follows.
    {
        std::lock_guard lk(m_gate_lock);
        m_run_allowed = false;
    }
    m_state = RunState::Shutdown;
    {
        hw::MachineLock lk(*m_vm.machine);
        m_vm.machine->clock().pause();
    }
    post_emit(MonitorEvent::Stop);
    return true;
}

void VmControl::guest_reset() { post_emit(MonitorEvent::Reset, cause(true, "guest-reset")); }

void VmControl::guest_reset_ends_run() { post_emit(MonitorEvent::Shutdown, cause(true, "guest-reset")); }

// ---- parking ----

void VmControl::park_vcpu()
{
    {
        std::lock_guard lk(m_gate_lock);
        m_run_allowed = false;
        m_park_depth++;
        if (m_parked || m_vcpu_gone)
            return;
    }
    // Out of the interpreter's slice, KVM_RUN or a HLT wait.
    if (m_vm.machine)
        m_vm.machine->request_stop();
    if (m_vm.vcpu)
        m_vm.vcpu->kick();
    std::unique_lock lk(m_gate_lock);
    m_gate.wait(lk, [&] { return m_parked || m_vcpu_gone || m_ending; });
}

void VmControl::unpark_vcpu()
{
    std::lock_guard lk(m_gate_lock);
    if (m_park_depth > 0)
        m_park_depth--;
    if (m_park_depth == 0 && m_state == RunState::Running) {
        m_run_allowed = true;
        m_gate.notify_all();
    }
}

void VmControl::pause_into(RunState state)
{
    bool was_running = m_state == RunState::Running;
    park_vcpu();
    m_state = state;
    unpark_vcpu(); // drops the depth; the gate stays closed (not Running)
    if (m_vm.machine) {
        hw::MachineLock lk(*m_vm.machine);
        m_vm.machine->clock().pause();
    }
    if (was_running)
        emit(MonitorEvent::Stop);
}

// ---- events ----

void VmControl::emit(MonitorEvent kind, std::vector<EventField> data)
{
    if (m_sink)
        m_sink(monitor::MachineEvent { kind, std::move(data) });
}

void VmControl::post_emit(MonitorEvent kind, std::vector<EventField> data)
{
    m_loop.post([this, kind, data = std::move(data)]() mutable { emit(kind, std::move(data)); });
}

// ---- run state ----

RunState VmControl::run_state() const { return m_state; }

Result<void> VmControl::stop()
{
    if (m_state == RunState::Running)
        pause_into(RunState::Paused);
    return {};
}

Result<void> VmControl::cont()
{
    RunState state = m_state;
    if (state == RunState::Running)
        return {};
    if (state == RunState::Shutdown || state == RunState::InternalError)
        return Error::invalid("Resetting the Virtual Machine is required");
    if (m_vm.disks) {
        hw::MachineLock lk(*m_vm.machine);
        m_io_status.clear();
        m_vm.disks->resume();
    }
    {
        hw::MachineLock lk(*m_vm.machine);
        m_vm.machine->clock().resume();
    }
    // RESUME goes out before the reply, as QEMU sends it.
    m_state = RunState::Running;
    emit(MonitorEvent::Resume);
    std::lock_guard lk(m_gate_lock);
    if (m_park_depth == 0) {
        m_run_allowed = true;
        m_gate.notify_all();
    }
    return {};
}

Result<void> VmControl::system_reset()
{
    if (m_vm.config.no_reboot) {
        // -no-reboot turns every reset into the end of the run.
        emit(MonitorEvent::Shutdown, cause(false, "host-qmp-system-reset"));
        if (m_exit)
            m_loop.schedule([this] { m_exit(0); });
        return {};
    }
    emit(MonitorEvent::Reset, cause(false, "host-qmp-system-reset"));
    // Reset here with the vCPU parked (a reset request through the board
    // would look like the guest's own). A paused VM stays paused; a
    // shut-down one goes back to prelaunch, as QEMU does, so `cont` starts it.
    park_vcpu();
    auto r = reboot_vm(m_vm);
    if (m_state == RunState::Shutdown || m_state == RunState::InternalError)
        m_state = RunState::Prelaunch;
    unpark_vcpu();
    return r;
}

Result<void> VmControl::system_powerdown()
{
    {
        hw::MachineLock lk(*m_vm.machine);
        m_vm.machine->acpi_pm().press_power_button();
    }
    emit(MonitorEvent::Powerdown);
    return {};
}

void VmControl::quit()
{
    emit(MonitorEvent::Shutdown, cause(false, "host-qmp-quit"));
    m_vm.quit_requested_by_user = true;
    // After the reply is written: the command's caller sends it on return.
    m_loop.schedule([this] {
        if (m_exit)
            m_exit(0);
        else
            m_loop.stop();
    });
}

void VmControl::emit_block_io_error(
    const std::string& drive_id, hw::IoDirection dir, const char* action, bool nospace, const std::string& reason)
{
    std::vector<EventField> data;
    data.push_back(string_field("device", drive_id));
    hw::Drive* d = find_drive(drive_id);
    data.push_back(string_field("node-name", d && !d->config().node_name.empty() ? d->config().node_name : ""));
    data.push_back(string_field("operation", dir == hw::IoDirection::Read ? "read" : "write"));
    data.push_back(string_field("action", action));
    data.push_back(bool_field("nospace", nospace));
    data.push_back(string_field("reason", reason));
    emit(MonitorEvent::BlockIoError, std::move(data));
}

void VmControl::block_error_stop(
    const std::string& drive_id, hw::IoDirection dir, bool nospace, const std::string& reason)
{
    // BLOCK_IO_ERROR, then STOP (io-error), as QEMU orders them.
    Log::error(reason);
    m_io_status[drive_id] = nospace ? "nospace" : "failed";
    emit_block_io_error(drive_id, dir, "stop", nospace, reason);
    if (m_state == RunState::Running)
        pause_into(RunState::IoError);
}

void VmControl::block_error_passed(
    const std::string& drive_id, hw::IoDirection dir, bool ignored, bool nospace, const std::string& reason)
{
    // The guest sees the error (report) or success (ignore); the VM runs on.
    if (!ignored)
        m_io_status[drive_id] = nospace ? "nospace" : "failed";
    emit_block_io_error(drive_id, dir, ignored ? "ignore" : "report", nospace, reason);
}

// ---- identity ----

monitor::VersionInfo VmControl::version() const { return { 0, 1, 0, "" }; }

std::optional<std::string> VmControl::name() const
{
    if (m_vm.config.name.empty())
        return std::nullopt;
    return m_vm.config.name;
}

monitor::KvmInfo VmControl::kvm() const
{
    monitor::KvmInfo info;
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    info.present = fd >= 0;
    if (fd >= 0)
        close(fd);
    info.enabled = m_vm.vcpu && std::strcmp(m_vm.vcpu->accel_name(), "kvm") == 0;
    return info;
}

// ---- CPUs and memory ----

std::vector<monitor::CpuInfo> VmControl::cpus() const
{
    monitor::CpuInfo cpu;
    cpu.index = 0;
    cpu.thread_id = m_vcpu_tid ? int64_t(m_vcpu_tid.load()) : int64_t(getpid());
    cpu.qom_path = "/machine/unattached/device[0]";
    return { cpu };
}

Result<monitor::CpuRegisters> VmControl::cpu_registers(int64_t cpu_index)
{
    if (cpu_index != 0 || !m_vm.vcpu)
        return Error::not_found("CPU " + std::to_string(cpu_index) + " does not exist");
    park_vcpu();
    accel::x86::CpuState s = m_vm.vcpu->state();
    unpark_vcpu();

    monitor::CpuRegisters r;
    std::memcpy(r.gpr, s.gpr, sizeof r.gpr);
    r.rip = s.rip;
    r.rflags = s.rflags;
    r.cpl = int(s.cpl());
    r.interrupt_inhibit = s.events.interrupt_shadow != 0;
    r.halted = s.halted;
    auto seg = [](const accel::x86::SegmentCache& c) {
        monitor::SegmentState out;
        out.selector = c.selector;
        out.base = c.base;
        out.limit = c.limit;
        out.flags = monitor::segment_flags_from_access_rights(c.attr, c.limit);
        return out;
    };
    for (unsigned i = 0; i < 6; i++)
        r.segs[i] = seg(s.seg[i]);
    r.ldt = seg(s.ldtr);
    r.tr = seg(s.tr);
    r.gdt = { s.gdtr.base, s.gdtr.limit };
    r.idt = { s.idtr.base, s.idtr.limit };
    r.cr0 = s.cr0;
    r.cr2 = s.cr2;
    r.cr3 = s.cr3;
    r.cr4 = s.cr4;
    std::memcpy(r.dr, s.dr, sizeof r.dr);
    r.efer = s.efer;
    r.fcw = s.fpu.fcw;
    r.fsw = s.fpu.fsw;
    r.ftw_abridged = s.fpu.ftw;
    r.mxcsr = s.fpu.mxcsr;
    for (unsigned i = 0; i < 8; i++) {
        std::memcpy(&r.fpr[i].mantissa, s.fpu.st[i].b, 8);
        std::memcpy(&r.fpr[i].exponent, s.fpu.st[i].b + 8, 2);
    }
    for (unsigned i = 0; i < 16; i++) {
        r.xmm[i].lo = s.fpu.xmm[i].q[0];
        r.xmm[i].hi = s.fpu.xmm[i].q[1];
    }
    return r;
}

Result<void> VmControl::read_memory(
    monitor::AddressKind kind, int64_t cpu_index, uint64_t address, void* buffer, uint64_t length_bytes)
{
    hw::GuestMemory& memory = m_vm.machine->memory();
    if (kind == monitor::AddressKind::Physical)
        return memory.read(address, buffer, length_bytes);
    if (cpu_index != 0 || !m_vm.vcpu)
        return Error::not_found("CPU " + std::to_string(cpu_index) + " does not exist");
    park_vcpu();
    accel::x86::CpuState s = m_vm.vcpu->state();
    unpark_vcpu();
    auto* out = static_cast<uint8_t*>(buffer);
    while (length_bytes > 0) {
        uint64_t chunk = std::min<uint64_t>(length_bytes, 0x1000 - (address & 0xfff));
        uint64_t pa = TRY(translate_guest_virtual(memory, s, address));
        TRY(memory.read(pa, out, chunk));
        out += chunk;
        address += chunk;
        length_bytes -= chunk;
    }
    return {};
}

} // namespace kiln::system
