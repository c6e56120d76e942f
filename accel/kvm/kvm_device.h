// KvmDevice: the open /dev/kvm handle and what the host kernel's KVM
// offers (API version, capabilities, supported CPUID, MSR index list).
// One per process; VMs are created from it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "accel/kvm/kvm_cpuid.h"
#include "util/result.h"

namespace kiln::accel::kvm {

inline constexpr const char* k_default_device_path = "/dev/kvm";

class KvmDevice {
public:
    // Opens the device and checks API version 12 and the capabilities Kiln
    // cannot run without. Errors read as QEMU's: "Could not access KVM
    // kernel module: No such file or directory".
    static Result<std::unique_ptr<KvmDevice>> open(const std::string& path = k_default_device_path);
    ~KvmDevice();
    KvmDevice(const KvmDevice&) = delete;
    KvmDevice& operator=(const KvmDevice&) = delete;

    int fd() const { return m_fd; }
    const std::string& path() const { return m_path; }
    // KVM_CHECK_EXTENSION on the system fd: 0 if absent, else the cap's value.
    int check_extension(unsigned cap) const;
    size_t vcpu_mmap_bytes() const { return m_vcpu_mmap_bytes; }

    // KVM_GET_SUPPORTED_CPUID, fetched once.
    const std::vector<CpuidEntry>& supported_cpuid() const { return m_supported_cpuid; }
    // KVM_GET_MSR_INDEX_LIST (informational: the vCPU probes each MSR it
    // transfers, since the list leaves out some emulated ones such as the
    // MTRRs); empty if the kernel refuses the ioctl.
    const std::vector<uint32_t>& msr_index_list() const { return m_msr_index_list; }
    bool has_msr_index_list() const { return m_have_msr_list; }
    // Whether the host CPU has VMX or SVM (/proc/cpuinfo). KVM without it
    // (a paravirtualised or software KVM inside another VM) runs guests far
    // slower and ends some guest faults, a triple fault among them, in
    // emulation failures instead of a shutdown exit.
    bool hardware_virtualization() const { return m_hardware_virtualization; }

private:
    KvmDevice() = default;
    Result<void> load_supported_cpuid();
    void load_msr_index_list();

    int m_fd = -1;
    std::string m_path;
    size_t m_vcpu_mmap_bytes = 0;
    std::vector<CpuidEntry> m_supported_cpuid;
    std::vector<uint32_t> m_msr_index_list;
    bool m_have_msr_list = false;
    bool m_hardware_virtualization = true;
};

// True if a /proc/cpuinfo text lists the vmx or svm flag.
bool cpuinfo_has_hardware_virtualization(std::string_view cpuinfo);

// "ioctl-name failed: strerror" with the errno of the last call.
Error ioctl_error(const char* what, int err);

} // namespace kiln::accel::kvm
