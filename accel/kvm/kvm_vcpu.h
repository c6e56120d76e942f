// KvmVcpu: one virtual CPU under KVM, driven through the common Vcpu shape
// (accel/accelerator.h) so the board treats it like the interpreter.
//
// Interrupts use Kiln's own (userspace) irqchip: the board's PIC/APIC
// model answers VcpuHost::interrupt_pending()/acknowledge_interrupt(), and
// this class injects with KVM_INTERRUPT when the guest's interrupt window
// is open, asking KVM for an exit when it opens otherwise; NMIs go in with
// KVM_NMI. See docs/accel.md (KVM section) for why.
//
// Threads: run() and the state accessors on the vCPU's own thread; kick()
// and wake() from anywhere (a signal plus kvm_run.immediate_exit make a
// running KVM_RUN return at once).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "accel/accelerator.h"
#include "accel/kvm/kvm_cpuid.h"
#include "accel/kvm/kvm_vm.h"
#include "accel/vcpu_host.h"
#include "accel/x86/cpu_state.h"
#include "util/result.h"

struct kvm_run;

namespace kiln::accel::kvm {

// Exit counters, for tests and `info kvm`-style statistics.
struct KvmExitStats {
    uint64_t runs = 0;
    uint64_t io = 0;
    uint64_t mmio = 0;
    uint64_t hlt = 0;
    uint64_t irq_window = 0;
    uint64_t intr = 0;
    uint64_t interrupts_injected = 0;
    uint64_t nmis_injected = 0;
};

// The signal kick() sends to a vCPU thread (a real-time signal with an
// empty handler, installed once per process with SA_RESTART).
int kick_signal();

class KvmVcpu final : public Vcpu {
public:
    // Creates the vCPU with KVM vCPU id = APIC ID = `apic_id`, sets its
    // CPUID from `model`, and puts it in the power-on reset state.
    static Result<std::unique_ptr<KvmVcpu>> create(
        KvmVm& vm, VcpuHost& host, const KvmCpuModel& model, uint32_t apic_id);
    ~KvmVcpu() override;
    KvmVcpu(const KvmVcpu&) = delete;
    KvmVcpu& operator=(const KvmVcpu&) = delete;

    // Vcpu. state() fetches from KVM if the guest ran since the last fetch
    // and marks the copy as changed (it is written back when run() starts).
    x86::CpuState& state() override;
    void reset(x86::ResetKind kind) override;
    Result<VcpuExit> run() override;
    void kick() override;
    void wake() override;

    // Explicit transfers with errors reported (migration, tests).
    Result<x86::CpuState> get_state();
    Result<void> set_state(const x86::CpuState& state);

    const KvmCpuModel& model() const { return m_model; }
    uint32_t apic_id() const { return m_apic_id; }
    // The MSRs this vCPU transfers (the model's, as far as KVM has them).
    const std::vector<uint32_t>& msrs() const { return m_msrs; }
    uint64_t tsc_khz() const { return m_tsc_khz; }
    // Whether KVM refuses PV MSRs the CPUID model does not advertise
    // (KVM_CAP_ENFORCE_PV_FEATURE_CPUID, Linux 5.10+).
    bool pv_features_enforced() const { return m_pv_enforced; }
    // Whether x87/SSE state moves through KVM_GET/SET_XSAVE (else KVM_GET/SET_FPU).
    bool uses_xsave() const { return m_have_xsave; }
    const KvmExitStats& stats() const { return m_stats; }

private:
    enum class StateLocation {
        InSync, // m_state equals KVM's
        Kernel, // the guest ran: KVM's is newer
        User, // m_state was handed out or changed: push before running
    };

    KvmVcpu(KvmVm& vm, VcpuHost& host, const KvmCpuModel& model, uint32_t apic_id)
        : m_vm(vm)
        , m_host(host)
        , m_model(model)
        , m_apic_id(apic_id)
    {
    }
    Result<void> init();
    Result<void> set_cpuid();
    Result<void> probe_msrs();
    Result<void> enforce_pv_cpuid();

    // kvm_vcpu_state.cpp
    Result<void> fetch_state();
    Result<void> push_state();
    Result<void> fetch_msrs();
    Result<void> push_msrs();
    Result<void> sync_from_kernel();
    uint64_t guest_tsc_base() const;

    // kvm_vcpu_exits.cpp
    Result<void> inject_events();
    Result<bool> handle_exit(VcpuExit& exit); // true: return `exit` from run()
    Result<void> complete_pending_io();
    bool guest_interrupts_enabled() const;
    bool interrupt_window_open() const;
    // Blocks in VcpuHost::wait_for_interrupt() until the halted CPU has an
    // event to take (nullopt) or run() must return (Kicked, Stopped).
    std::optional<VcpuExit> wait_while_halted();
    void handle_io();
    void handle_mmio();
    Error exit_error(std::string what);
    std::string code_at_rip(const x86::CpuState& s);

    KvmVm& m_vm;
    VcpuHost& m_host;
    KvmCpuModel m_model;
    uint32_t m_apic_id;
    int m_fd = -1;
    kvm_run* m_run = nullptr;
    size_t m_run_bytes = 0;

    x86::CpuState m_state;
    StateLocation m_location = StateLocation::User;
    int64_t m_kernel_tsc_offset = 0; // tsc_offset as last read from or written to KVM
    bool m_tsc_known = false;
    bool m_io_completion_pending = false; // last exit was PIO/MMIO, not yet completed by KVM_RUN
    bool m_run_fields_valid = false; // kvm_run's if_flag/ready_for_interrupt_injection describe the CPU
    std::vector<uint32_t> m_msrs;
    std::vector<uint8_t> m_xsave_buf;
    bool m_have_xsave = false;
    bool m_have_xsave2 = false;
    bool m_have_xcrs = false;
    uint64_t m_tsc_khz = 0;
    bool m_pv_enforced = false;

    std::atomic<bool> m_kick_requested { false };
    std::atomic<bool> m_in_run { false };
    std::atomic<pthread_t> m_thread {};
    KvmExitStats m_stats;
};

} // namespace kiln::accel::kvm
