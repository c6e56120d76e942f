// KvmVcpu: interrupt injection before KVM_RUN and the exits after it.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "accel/kvm/kvm_state.h"
#include "accel/kvm/kvm_vcpu.h"
#include "util/log.h"

namespace kiln::accel::kvm {

namespace {

const char* internal_error_name(uint32_t suberror)
{
    switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
        return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
        return "simultaneous exceptions";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
        return "event delivery failed";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
        return "unexpected exit reason";
    default:
        return "unknown";
    }
}

} // namespace

Result<void> KvmVcpu::inject_events()
{
    if (m_host.nmi_pending()) {
        // KVM queues the NMI and delivers it when NMIs are unblocked.
        if (ioctl(m_fd, KVM_NMI) < 0)
            return ioctl_error("KVM_NMI", errno);
        m_host.acknowledge_nmi();
        m_stats.nmis_injected++;
    }
    m_run->request_interrupt_window = 0;
    if (!m_host.interrupt_pending())
        return {};
    if (interrupt_window_open()) {
        kvm_interrupt irq {};
        irq.irq = m_host.acknowledge_interrupt();
        if (ioctl(m_fd, KVM_INTERRUPT, &irq) < 0)
            return ioctl_error("KVM_INTERRUPT", errno);
        m_stats.interrupts_injected++;
    } else {
        m_run->request_interrupt_window = 1;
    }
    return {};
}

bool KvmVcpu::interrupt_window_open() const
{
    if (m_run_fields_valid)
        return m_run->ready_for_interrupt_injection && m_run->if_flag;
    // Right after a state push (handoff from the interpreter, loadvm, the
    // first run) kvm_run says nothing yet, but the pushed state is KVM's:
    // decide from it. Asking for a window exit instead is not enough: an
    // emulated KVM (this build host's) enters the guest without exiting for
    // a window that is already open, and a guest resuming from HLT then
    // runs on with the interrupt still queued.
    const x86::PendingEvents& e = m_state.events;
    return (m_state.rflags & x86::k_flag_if) && e.interrupt_shadow == 0 && !e.interrupt_injected
        && !e.exception_pending;
}

void KvmVcpu::handle_io()
{
    auto& io = m_run->io;
    unsigned size = io.size;
    uint64_t end = uint64_t(io.data_offset) + uint64_t(size) * io.count;
    if ((size != 1 && size != 2 && size != 4) || end > m_run_bytes) {
        Log::error("kvm: malformed I/O exit (port 0x" + std::to_string(io.port) + ")");
        return;
    }
    // The data lies inside the kvm_run mapping (checked above).
    uint8_t* data = reinterpret_cast<uint8_t*>(m_run) + io.data_offset;
    for (uint32_t i = 0; i < io.count; i++, data += size) {
        if (io.direction == KVM_EXIT_IO_IN) {
            uint32_t v = m_host.pio_read(io.port, size);
            std::memcpy(data, &v, size);
        } else {
            uint32_t v = 0;
            std::memcpy(&v, data, size);
            m_host.pio_write(io.port, size, v);
        }
    }
}

void KvmVcpu::handle_mmio()
{
    auto& mmio = m_run->mmio;
    unsigned len = mmio.len;
    if (len == 0 || len > 8)
        return;
    if (mmio.is_write) {
        // A write to a read-only slot is a guest write to ROM: dropped.
        const MemorySlot* slot = m_vm.slot_for(mmio.phys_addr);
        if (slot && slot->read_only)
            return;
        uint64_t v = 0;
        std::memcpy(&v, mmio.data, len);
        m_host.mmio_write(mmio.phys_addr, len, v);
    } else {
        uint64_t v = m_host.mmio_read(mmio.phys_addr, len);
        std::memcpy(mmio.data, &v, len);
    }
}

std::string KvmVcpu::code_at_rip(const x86::CpuState& s)
{
    // The bytes at CS:RIP, as QEMU's "Code=" line: translated through the
    // guest's page tables by KVM, read through GuestMemory's checks, up to
    // the end of the page.
    uint64_t linear = s.segment(x86::Seg::CS).base + s.rip;
    if (!s.long_mode_active())
        linear &= 0xffffffffu;
    kvm_translation t {};
    t.linear_address = linear;
    if (ioctl(m_fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
        return "Code=(RIP not mapped)";
    uint8_t bytes[16];
    uint64_t n = std::min<uint64_t>(sizeof bytes, k_page_bytes - (t.physical_address & (k_page_bytes - 1)));
    if (!m_vm.memory().read(t.physical_address, bytes, n))
        return "Code=(RIP outside RAM and ROM)";
    std::string out = "Code=";
    char hex[8];
    for (uint64_t i = 0; i < n; i++) {
        std::snprintf(hex, sizeof hex, i == 0 ? "<%02x>" : " %02x", bytes[i]);
        out += hex;
    }
    return out;
}

Error KvmVcpu::exit_error(std::string what)
{
    std::string regs;
    if (auto s = get_state(); s)
        regs = format_cpu_state(*s) + "\n" + code_at_rip(*s);
    else
        regs = "(registers unavailable: " + s.error().message() + ")";
    Log::error(what);
    return Error::internal(what + "\n" + regs);
}

Result<bool> KvmVcpu::handle_exit(VcpuExit& exit)
{
    switch (m_run->exit_reason) {
    case KVM_EXIT_IO:
        m_stats.io++;
        handle_io();
        return false;
    case KVM_EXIT_MMIO:
        m_stats.mmio++;
        handle_mmio();
        return false;
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        m_stats.irq_window++;
        return false;
    case KVM_EXIT_INTR:
        m_stats.intr++;
        return false;
    case KVM_EXIT_SET_TPR:
        // 64-bit code lowered CR8 (VMX, userspace APIC). CR8 lives in the
        // CPU state, as under the interpreter; re-entering re-evaluates
        // interrupt injection.
        return false;
    case KVM_EXIT_HLT:
        m_stats.hlt++;
        if (std::optional<VcpuExit> stop = wait_while_halted()) {
            exit = *stop;
            return true;
        }
        return false;
    case KVM_EXIT_SHUTDOWN:
        m_host.request_reset();
        exit = VcpuExit::Reset;
        return true;
    case KVM_EXIT_SYSTEM_EVENT:
        m_host.request_reset();
        exit = VcpuExit::Reset;
        return true;
    case KVM_EXIT_INTERNAL_ERROR: {
        auto& ie = m_run->internal;
        char msg[256];
        int n = snprintf(
            msg, sizeof msg, "KVM internal error. Suberror: %u (%s)", ie.suberror, internal_error_name(ie.suberror));
        for (uint32_t i = 0; i < ie.ndata && i < 16 && n < int(sizeof msg) - 24; i++)
            n += snprintf(
                msg + n, sizeof msg - n, "%s0x%llx", i ? " " : ", extra data: ", (unsigned long long)ie.data[i]);
        std::string what = msg;
        if (ie.suberror == KVM_INTERNAL_ERROR_EMULATION && !m_vm.device().hardware_virtualization())
            what += "\nnote: this host's KVM runs without hardware virtualisation (no vmx/svm in /proc/cpuinfo); "
                    "it reports guest faults it cannot deliver, a triple fault among them, as emulation failures";
        return exit_error(what);
    }
    case KVM_EXIT_FAIL_ENTRY: {
        char msg[128];
        snprintf(msg, sizeof msg, "KVM: entry failed, hardware error 0x%llx",
            (unsigned long long)m_run->fail_entry.hardware_entry_failure_reason);
        return exit_error(msg);
    }
    default:
        return exit_error("KVM: unhandled exit reason " + std::to_string(m_run->exit_reason));
    }
}

} // namespace kiln::accel::kvm
