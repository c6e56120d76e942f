#include "accel/kvm/kvm_vcpu.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "accel/kvm/kvm_msrs.h"
#include "accel/kvm/kvm_state.h"
#include "accel/kvm/private/kvm_abi.h"
#include "util/log.h"

namespace kiln::accel::kvm {

namespace {

void kick_handler(int) { }

void install_kick_handler()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa { };
        sa.sa_handler = kick_handler;
        sa.sa_flags = SA_RESTART; // host syscalls in device callbacks restart; KVM_RUN still returns EINTR
        sigemptyset(&sa.sa_mask);
        sigaction(kick_signal(), &sa, nullptr);
    });
}

void unblock_kick_signal()
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

} // namespace

int kick_signal() { return SIGRTMIN + 2; }

Result<std::unique_ptr<KvmVcpu>> KvmVcpu::create(KvmVm& vm, VcpuHost& host, const KvmCpuModel& model, uint32_t apic_id)
{
    std::unique_ptr<KvmVcpu> vcpu(new KvmVcpu(vm, host, model, apic_id));
    TRY(vcpu->init());
    return vcpu;
}

Result<void> KvmVcpu::init()
{
    install_kick_handler();
    m_fd = ioctl(m_vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(m_apic_id));
    if (m_fd < 0)
        return ioctl_error("KVM_CREATE_VCPU", errno);
    m_run_bytes = m_vm.device().vcpu_mmap_bytes();
    void* map = mmap(nullptr, m_run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m_fd, 0);
    if (map == MAP_FAILED)
        return Error::from_errno(errno, "kvm: cannot map the vCPU's kvm_run area");
    m_run = static_cast<kvm_run*>(map);

    int xsave2_bytes = m_vm.check_extension(KVM_CAP_XSAVE2);
    m_have_xsave2 = xsave2_bytes > 0;
    m_xsave_buf.assign(std::max<size_t>(k_xsave_min_bytes, size_t(std::max(xsave2_bytes, 0))), 0);
    // Try each ioctl once rather than trusting the capability alone; if
    // XSAVE does not work, the x87/SSE state moves with KVM_GET/SET_FPU.
    m_have_xsave = m_vm.check_extension(KVM_CAP_XSAVE) > 0
        && ioctl(m_fd, m_have_xsave2 ? abi::k_get_xsave2 : abi::k_get_xsave, m_xsave_buf.data()) == 0;
    kvm_xcrs xcrs {};
    m_have_xcrs = m_vm.check_extension(KVM_CAP_XCRS) > 0 && ioctl(m_fd, KVM_GET_XCRS, &xcrs) == 0;

    int khz = m_vm.check_extension(KVM_CAP_GET_TSC_KHZ) > 0 ? ioctl(m_fd, KVM_GET_TSC_KHZ, 0) : -1;
    m_tsc_khz = khz > 0 ? uint64_t(khz) : 1000000; // the guest sees the host's TSC rate

    TRY(set_cpuid());
    TRY(enforce_pv_cpuid());
    TRY(probe_msrs());
    m_state.apic_id = m_apic_id;
    reset(x86::ResetKind::PowerOn);
    return {};
}

KvmVcpu::~KvmVcpu()
{
    if (m_run)
        munmap(m_run, m_run_bytes);
    if (m_fd >= 0)
        close(m_fd);
}

Result<void> KvmVcpu::set_cpuid()
{
    std::vector<CpuidEntry> entries = m_model.entries_for_apic(m_apic_id);
    abi::CpuidBuffer buf(entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
        kvm_cpuid_entry2& e = buf.entry(i);
        e.function = entries[i].leaf;
        e.index = entries[i].subleaf;
        e.flags = entries[i].indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
        e.eax = entries[i].regs.eax;
        e.ebx = entries[i].regs.ebx;
        e.ecx = entries[i].regs.ecx;
        e.edx = entries[i].regs.edx;
    }
    if (ioctl(m_fd, abi::k_set_cpuid2, buf.hdr()) < 0)
        return ioctl_error(("KVM_SET_CPUID2 (CPU model '" + m_model.name() + "')").c_str(), errno);
    return {};
}

Result<void> KvmVcpu::enforce_pv_cpuid()
{
    // Paravirtual MSRs and hypercalls the model does not advertise in
    // 0x40000001 then #GP, as on a host without them: a guest cannot use
    // state (e.g. kvmclock after -kvmclock) that Kiln would not migrate.
    m_pv_enforced = false;
    if (m_vm.check_extension(KVM_CAP_ENFORCE_PV_FEATURE_CPUID) <= 0)
        return {};
    kvm_enable_cap cap {};
    cap.cap = KVM_CAP_ENFORCE_PV_FEATURE_CPUID;
    cap.args[0] = 1;
    if (ioctl(m_fd, KVM_ENABLE_CAP, &cap) < 0)
        return ioctl_error("KVM_ENABLE_CAP (KVM_CAP_ENFORCE_PV_FEATURE_CPUID)", errno);
    m_pv_enforced = true;
    return {};
}

Result<void> KvmVcpu::probe_msrs()
{
    // KVM_GET_MSR_INDEX_LIST is not consulted: it leaves out MSRs KVM
    // emulates but does not list (the MTRRs).
    for (uint32_t index : candidate_msrs(m_model)) {
        // Read the MSR and write the value back: both must work for the MSR
        // to be part of the state this vCPU saves and restores.
        abi::MsrBuffer one(1);
        one.entry(0).index = index;
        if (ioctl(m_fd, abi::k_get_msrs, one.hdr()) != 1)
            continue;
        if (ioctl(m_fd, abi::k_set_msrs, one.hdr()) != 1)
            continue;
        m_msrs.push_back(index);
    }
    if (m_msrs.empty())
        Log::warning("kvm: KVM_GET/SET_MSRS work for no MSR; MSRs (TSC, SYSCALL, PAT, MTRRs) are not "
                     "saved or restored");
    return {};
}

x86::CpuState& KvmVcpu::state()
{
    if (auto r = sync_from_kernel(); !r)
        Log::error("kvm: cannot read the vCPU state: " + r.error().message());
    m_location = StateLocation::User;
    return m_state;
}

Result<x86::CpuState> KvmVcpu::get_state()
{
    TRY(sync_from_kernel());
    return m_state;
}

Result<void> KvmVcpu::set_state(const x86::CpuState& state)
{
    m_state = state;
    m_location = StateLocation::User;
    TRY(push_state());
    return {};
}

void KvmVcpu::reset(x86::ResetKind kind)
{
    if (kind == x86::ResetKind::Init)
        (void)sync_from_kernel(); // INIT keeps FPU state and MTRRs: start from the current ones
    x86::reset_cpu_state(m_state, kind, m_model.signature(), m_apic_id == 0);
    m_location = StateLocation::User;
}

void KvmVcpu::kick()
{
    m_kick_requested.store(true);
    wake();
}

void KvmVcpu::wake()
{
    // immediate_exit covers a kick that lands just before KVM_RUN; the
    // signal covers one that lands while the guest runs.
    __atomic_store_n(&m_run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (m_in_run.load())
        pthread_kill(m_thread.load(), kick_signal());
}

Result<VcpuExit> KvmVcpu::run()
{
    m_thread.store(pthread_self());
    unblock_kick_signal();
    m_in_run.store(true);
    struct InRun {
        std::atomic<bool>& flag;
        ~InRun() { flag.store(false); }
    } in_run { m_in_run };

    if (m_location == StateLocation::User)
        TRY(push_state());

    // Stopped in HLT earlier, or handed over halted (by the interpreter,
    // loadvm): KVM's RIP is already past the HLT, so wait here.
    if (m_state.halted) {
        if (std::optional<VcpuExit> stop = wait_while_halted())
            return *stop;
    }

    for (;;) {
        __atomic_store_n(&m_run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (m_kick_requested.exchange(false)) {
            TRY(complete_pending_io());
            return VcpuExit::Kicked;
        }
        TRY(inject_events());
        m_location = StateLocation::Kernel;
        m_stats.runs++;
        int rc = ioctl(m_fd, KVM_RUN, 0);
        m_run_fields_valid = true;
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                m_stats.intr++;
                continue;
            }
            return exit_error(std::string("KVM_RUN failed: ") + std::strerror(errno));
        }
        // Set before handling: only these exits leave an instruction for
        // the next KVM_RUN to finish, and no other exit may inherit the flag.
        m_io_completion_pending = m_run->exit_reason == KVM_EXIT_IO || m_run->exit_reason == KVM_EXIT_MMIO;
        VcpuExit exit;
        if (TRY(handle_exit(exit)))
            return exit;
    }
}

bool KvmVcpu::guest_interrupts_enabled() const
{
    // kvm_run's copy is fresh after every exit; after a state push the
    // pushed state is what KVM has.
    if (m_run_fields_valid)
        return m_run->if_flag;
    return m_state.rflags & x86::k_flag_if;
}

// HLT ends only with an event the CPU takes: an NMI, or an interrupt while
// IF is set. A wake-up without one (a kick, a timer that raised nothing, an
// interrupt the guest masks) leaves the CPU halted, as the interpreter and
// hardware do, so `state().halted` stays true when run() returns.
std::optional<VcpuExit> KvmVcpu::wait_while_halted()
{
    // A state written in with an event already owed (an acknowledged
    // interrupt, an NMI, an exception: KVM delivers them on entry) is not
    // waiting for anything.
    const x86::PendingEvents& owed = m_state.events;
    if (m_location != StateLocation::Kernel
        && (owed.interrupt_injected || owed.nmi_pending || owed.exception_pending)) {
        m_state.halted = false;
        return std::nullopt;
    }
    m_state.halted = true;
    for (;;) {
        if (m_host.nmi_pending() || (guest_interrupts_enabled() && m_host.interrupt_pending())) {
            m_state.halted = false;
            return std::nullopt;
        }
        if (m_kick_requested.exchange(false))
            return VcpuExit::Kicked;
        if (!m_host.wait_for_interrupt())
            return VcpuExit::Stopped;
        // A masked interrupt makes wait_for_interrupt() return at once, yet
        // only an NMI, a kick or a stop can end this HLT (Linux's halt loop
        // after a panic): poll gently instead of spinning a host CPU.
        if (!guest_interrupts_enabled() && m_host.interrupt_pending() && !m_host.nmi_pending())
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// After a PIO or MMIO exit KVM finishes the instruction (RIP, IN data) only
// on the next KVM_RUN. Before the state leaves KVM (a kick that ends run(),
// then get_state for migration or another accelerator), enter once with
// immediate_exit set: KVM completes the instruction and returns EINTR
// without running guest code (the KVM API documentation requires this).
Result<void> KvmVcpu::complete_pending_io()
{
    if (!m_io_completion_pending)
        return {};
    m_io_completion_pending = false;
    __atomic_store_n(&m_run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    int rc = ioctl(m_fd, KVM_RUN, 0);
    __atomic_store_n(&m_run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    if (rc < 0 && errno != EINTR && errno != EAGAIN)
        return exit_error(std::string("KVM_RUN (completing I/O) failed: ") + std::strerror(errno));
    return {};
}

} // namespace kiln::accel::kvm
