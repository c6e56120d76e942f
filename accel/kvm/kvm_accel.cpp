#include "accel/kvm/kvm_accel.h"

#include <mutex>

#include "util/log.h"

namespace kiln::accel::kvm {

Result<std::unique_ptr<KvmAccel>> KvmAccel::create(hw::GuestMemory& memory, const KvmOptions& options)
{
    auto device = TRY(KvmDevice::open(options.device_path));
    if (!device->hardware_virtualization()) {
        // Said once per process: a VM that is mysteriously slow should not
        // need a profiler to explain.
        static std::once_flag once;
        std::call_once(once, [] {
            Log::warning("kvm: the host CPU has no VMX/SVM (KVM is paravirtualised or emulated here): guests run "
                         "much slower than on hardware");
        });
    }
    auto model = TRY(KvmCpuModel::by_name(options.cpu, device->supported_cpuid(), options.cpu_options));
    for (const std::string& bit : model.dropped_features())
        Log::warning("host doesn't support requested feature: " + bit);
    std::unique_ptr<KvmAccel> accel(new KvmAccel(std::move(device), std::move(model)));
    accel->m_vm = TRY(KvmVm::create(*accel->m_device, memory));
    return accel;
}

Result<std::unique_ptr<KvmVcpu>> KvmAccel::create_vcpu(VcpuHost& host, uint32_t apic_id)
{
    return KvmVcpu::create(*m_vm, host, m_model, apic_id);
}

} // namespace kiln::accel::kvm
