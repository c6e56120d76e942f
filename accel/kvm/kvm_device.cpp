#include "accel/kvm/kvm_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "accel/kvm/private/kvm_abi.h"

namespace kiln::accel::kvm {

namespace {

constexpr int k_api_version = 12;

struct RequiredCap {
    unsigned cap;
    const char* name;
};

// Without these the run loop, the memory map or the state conversion
// cannot work; everything else is optional and checked where it is used.
constexpr RequiredCap k_required_caps[] = {
    { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
    { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
    { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
    { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
    { KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
    { KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS" },
};

} // namespace

bool cpuinfo_has_hardware_virtualization(std::string_view cpuinfo)
{
    // The first "flags : f1 f2 ..." line (every CPU lists the same); whole
    // words only.
    size_t pos = cpuinfo.find("\nflags");
    if (pos == std::string_view::npos)
        return false;
    size_t end = cpuinfo.find('\n', pos + 1);
    std::string_view line = cpuinfo.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
        return false;
    std::string flags = " " + std::string(line.substr(colon + 1)) + " ";
    return flags.find(" vmx ") != std::string::npos || flags.find(" svm ") != std::string::npos;
}

Error ioctl_error(const char* what, int err) { return Error::from_errno(err, std::string(what) + " failed"); }

Result<std::unique_ptr<KvmDevice>> KvmDevice::open(const std::string& path)
{
    std::unique_ptr<KvmDevice> dev(new KvmDevice());
    dev->m_path = path;
    dev->m_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (dev->m_fd < 0)
        return Error::from_errno(errno, "Could not access KVM kernel module");
    int version = ioctl(dev->m_fd, KVM_GET_API_VERSION, 0);
    if (version < 0)
        return Error::from_errno(errno, "'" + path + "' is not a KVM device");
    if (version != k_api_version)
        return Error::not_supported("KVM API version " + std::to_string(version) + " at '" + path
            + "' is not supported (Kiln needs " + std::to_string(k_api_version) + ")");
    for (auto& c : k_required_caps)
        if (dev->check_extension(c.cap) <= 0)
            return Error::not_supported(
                std::string("kvm: required capability ") + c.name + " is not supported by '" + path + "'");
    int mmap_bytes = ioctl(dev->m_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_bytes < int(sizeof(kvm_run)))
        return ioctl_error("KVM_GET_VCPU_MMAP_SIZE", mmap_bytes < 0 ? errno : EINVAL);
    dev->m_vcpu_mmap_bytes = size_t(mmap_bytes);
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
        if (line.starts_with("flags")) {
            dev->m_hardware_virtualization = cpuinfo_has_hardware_virtualization("\n" + line);
            break;
        }
    TRY(dev->load_supported_cpuid());
    dev->load_msr_index_list();
    return dev;
}

KvmDevice::~KvmDevice()
{
    if (m_fd >= 0)
        close(m_fd);
}

int KvmDevice::check_extension(unsigned cap) const
{
    int r = ioctl(m_fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Result<void> KvmDevice::load_supported_cpuid()
{
    // The kernel says E2BIG until the buffer is large enough.
    for (unsigned n = 64; n <= 4096; n *= 2) {
        abi::CpuidBuffer buf(n);
        if (ioctl(m_fd, abi::k_get_supported_cpuid, buf.hdr()) < 0) {
            if (errno == E2BIG)
                continue;
            return ioctl_error("KVM_GET_SUPPORTED_CPUID", errno);
        }
        m_supported_cpuid.clear();
        for (unsigned i = 0; i < buf.hdr()->nent && i < n; i++) {
            const kvm_cpuid_entry2& e = buf.entry(i);
            m_supported_cpuid.push_back({ e.function, e.index, (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0,
                { e.eax, e.ebx, e.ecx, e.edx } });
        }
        return {};
    }
    return ioctl_error("KVM_GET_SUPPORTED_CPUID", E2BIG);
}

void KvmDevice::load_msr_index_list()
{
    abi::MsrListBuffer probe(0);
    if (ioctl(m_fd, abi::k_get_msr_index_list, probe.hdr()) < 0 && errno != E2BIG)
        return;
    unsigned n = probe.hdr()->nmsrs;
    abi::MsrListBuffer list(n);
    if (ioctl(m_fd, abi::k_get_msr_index_list, list.hdr()) < 0)
        return;
    for (unsigned i = 0; i < list.hdr()->nmsrs && i < n; i++)
        m_msr_index_list.push_back(list.entry(i));
    m_have_msr_list = true;
}

} // namespace kiln::accel::kvm
