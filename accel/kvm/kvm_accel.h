// KvmAccel: the entry point the board uses for `-accel kvm`. It opens
// /dev/kvm, creates the VM over the machine's GuestMemory, resolves the
// `-cpu` model against what KVM supports, and creates vCPUs.
//
//   auto kvm = TRY(KvmAccel::create(memory, {.cpu = "host"}));
//   std::unique_ptr<Vcpu> cpu0 = TRY(kvm->create_vcpu(host0, 0));
//   ... on the vCPU thread: loop { TRY(cpu0->run()) ... }
#pragma once

#include <memory>
#include <string>

#include "accel/kvm/kvm_cpuid.h"
#include "accel/kvm/kvm_device.h"
#include "accel/kvm/kvm_vcpu.h"
#include "accel/kvm/kvm_vm.h"
#include "util/result.h"

namespace kiln::accel::kvm {

struct KvmOptions {
    std::string device_path = k_default_device_path;
    std::string cpu = "qemu64"; // "host" or a model of accel/x86/cpuid.h
    KvmCpuOptions cpu_options;
};

class KvmAccel {
public:
    static Result<std::unique_ptr<KvmAccel>> create(hw::GuestMemory& memory, const KvmOptions& options = {});

    Result<std::unique_ptr<KvmVcpu>> create_vcpu(VcpuHost& host, uint32_t apic_id);

    KvmDevice& device() { return *m_device; }
    KvmVm& vm() { return *m_vm; }
    const KvmCpuModel& cpu_model() const { return m_model; }

private:
    KvmAccel(std::unique_ptr<KvmDevice> device, KvmCpuModel model)
        : m_device(std::move(device))
        , m_model(std::move(model))
    {
    }

    std::unique_ptr<KvmDevice> m_device;
    std::unique_ptr<KvmVm> m_vm;
    KvmCpuModel m_model;
};

} // namespace kiln::accel::kvm
