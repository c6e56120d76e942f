#include "system/vcpu.h"

#include <pthread.h>

#include <cctype>

#include "accel/kvm/kvm_accel.h"
#include "accel/x86/cpuid.h"
#include "util/log.h"

#if KILN_HAVE_INTERPRETER
#include "accel/interp/interpreter.h"
#endif

namespace kiln::system {

namespace {

#if KILN_HAVE_INTERPRETER
class InterpVcpu final : public Vcpu, public hw::RamWriteObserver {
public:
    explicit InterpVcpu(std::unique_ptr<accel::interp::Interpreter> cpu) : m_cpu(std::move(cpu)) {}
    accel::x86::CpuState& state() override { return m_cpu->state(); }
    void power_on_reset() override { m_cpu->reset(accel::x86::ResetKind::PowerOn); }
    VcpuExit run(uint64_t max_instructions) override
    {
        using accel::interp::RunExit;
        switch (m_cpu->run(max_instructions)) {
        case RunExit::Budget: return VcpuExit::Budget;
        case RunExit::Kicked: return VcpuExit::Kicked;
        case RunExit::Stopped: return VcpuExit::Stopped;
        case RunExit::Reset: return VcpuExit::Reset;
        case RunExit::InternalError: return VcpuExit::Error;
        }
        return VcpuExit::Error;
    }
    void kick() override { m_cpu->kick(); }
    void wake() override { m_cpu->kick(); } // the interpreter re-polls after a kick
    const char* accel_name() const override { return "interp"; }
    void ram_written(uint64_t gpa, uint64_t len) override { m_cpu->invalidate_code(gpa, len); }

private:
    std::unique_ptr<accel::interp::Interpreter> m_cpu;
};
#endif

class KvmVcpuAdapter final : public Vcpu {
public:
    KvmVcpuAdapter(std::unique_ptr<accel::kvm::KvmAccel> kvm, std::unique_ptr<accel::kvm::KvmVcpu> cpu)
        : m_kvm(std::move(kvm)), m_cpu(std::move(cpu))
    {
    }
    ~KvmVcpuAdapter() override { m_cpu.reset(); } // the vCPU before its VM
    accel::x86::CpuState& state() override { return m_cpu->state(); }
    void power_on_reset() override { m_cpu->reset(accel::x86::ResetKind::PowerOn); }
    VcpuExit run(uint64_t) override
    {
        auto r = m_cpu->run();
        if (!r.ok()) {
            Log::error(r.error().message());
            return VcpuExit::Error;
        }
        switch (r.value()) {
        case accel::VcpuExit::Kicked: return VcpuExit::Kicked;
        case accel::VcpuExit::Stopped: return VcpuExit::Stopped;
        case accel::VcpuExit::Reset: return VcpuExit::Reset;
        }
        return VcpuExit::Error;
    }
    void kick() override { m_cpu->kick(); }
    void wake() override { m_cpu->wake(); }
    const char* accel_name() const override { return "kvm"; }

private:
    std::unique_ptr<accel::kvm::KvmAccel> m_kvm;
    std::unique_ptr<accel::kvm::KvmVcpu> m_cpu;
};

Result<std::unique_ptr<Vcpu>> create_kvm(const MachineConfig& cfg, hw::PcMachine& machine)
{
    accel::kvm::KvmOptions options;
    options.cpu = cfg.cpu_model;
    options.device_path = cfg.kvm_device;
    options.cpu_options.kvmclock = cfg.kvmclock;
    auto kvm = accel::kvm::KvmAccel::create(machine.memory(), options);
    if (!kvm.ok())
        return Error(ErrorKind::NotSupported, "-accel kvm: " + kvm.error().message());
    auto cpu = kvm.value()->create_vcpu(machine, 0);
    if (!cpu.ok())
        return Error(ErrorKind::NotSupported, "-accel kvm: " + cpu.error().message());
    return std::unique_ptr<Vcpu>(new KvmVcpuAdapter(std::move(kvm).value(), std::move(cpu).value()));
}

Result<std::unique_ptr<Vcpu>> create_interp(const MachineConfig& cfg, hw::PcMachine& machine)
{
    if (cfg.cpu_model == "host")
        return Error::invalid("-cpu host: the 'host' CPU type can only be used with KVM");
    auto model = accel::x86::CpuModel::by_name(cfg.cpu_model);
    if (!model.ok())
        return Error::invalid("-cpu " + cfg.cpu_model + ": " + model.error().message());
#if KILN_HAVE_INTERPRETER
    auto cpu = TRY(accel::interp::Interpreter::create(machine, model.value()));
    if (!cfg.interp_jit)
        TRY(cpu->set_jit(false));
    auto v = std::make_unique<InterpVcpu>(std::move(cpu));
    machine.memory().set_write_observer(v.get());
    return std::unique_ptr<Vcpu>(std::move(v));
#else
    return Error::not_supported("-accel interp: the interpreter is not built into this kiln yet");
#endif
}

} // namespace

Result<std::unique_ptr<Vcpu>> create_vcpu(const MachineConfig& cfg, hw::PcMachine& machine)
{
    std::optional<Error> last;
    for (size_t i = 0; i < cfg.accels.size(); i++) {
        AccelKind a = cfg.accels[i];
        auto v = a == AccelKind::Kvm ? create_kvm(cfg, machine) : create_interp(cfg, machine);
        if (v.ok())
            return v;
        last = std::move(v).error();
        if (i + 1 < cfg.accels.size()) {
            // As QEMU with -accel kvm -accel tcg: say why, then fall back.
            const char* next = cfg.accels[i + 1] == AccelKind::Kvm ? "kvm" : cfg.tcg_alias ? "tcg" : "interp";
            Log::error(last->message());
            Log::error(std::string("falling back to ") + next);
        }
    }
    return last ? *last : Error::internal("no accelerator configured");
}

void name_vcpu_thread(const Vcpu& vcpu, unsigned index)
{
    std::string name = "CPU " + std::to_string(index) + "/";
    for (const char* c = vcpu.accel_name(); *c; c++)
        name += char(toupper(uint8_t(*c)));
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

} // namespace kiln::system
