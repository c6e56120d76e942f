#include "system/vcpu.h"

#include "accel/x86/cpuid.h"

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
    const char* accel_name() const override { return "interp"; }
    void ram_written(uint64_t gpa, uint64_t len) override { m_cpu->invalidate_code(gpa, len); }

private:
    std::unique_ptr<accel::interp::Interpreter> m_cpu;
};
#endif

Result<std::unique_ptr<Vcpu>> create_interp(const MachineConfig& cfg, hw::PcMachine& machine)
{
    auto model = accel::x86::CpuModel::by_name(cfg.cpu_model);
    if (!model.ok())
        return Error::invalid("-cpu " + cfg.cpu_model + ": " + model.error().message());
#if KILN_HAVE_INTERPRETER
    auto cpu = TRY(accel::interp::Interpreter::create(machine, model.value()));
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
    for (AccelKind a : cfg.accels) {
        if (a == AccelKind::Kvm) {
            last = Error::not_supported("-accel kvm: the KVM accelerator is not available in this build");
            continue;
        }
        auto v = create_interp(cfg, machine);
        if (v.ok())
            return v;
        last = std::move(v).error();
    }
    return last ? *last : Error::internal("no accelerator configured");
}

} // namespace kiln::system
