// The KVM structures that end in a flexible array, in the kernel's (C)
// layout, and the ioctl numbers that encode their sizes.
//
// Why: the uapi headers of Linux 6.1 (Debian 12) declare these arrays with
// __DECLARE_FLEX_ARRAY, which in C++ puts an empty struct (size 1) before
// the array. That moves the array (kvm_msrs entries at 16 instead of 8,
// kvm_cpuid2 at 12 instead of 8, kvm_msr_list at 8 instead of 4) and
// changes sizeof, which _IOWR() folds into the ioctl number: the kernel
// then answers EINVAL. Everything here is laid out by hand instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <linux/kvm.h>
#include <sys/ioctl.h>

namespace kiln::accel::kvm::abi {

struct MsrsHeader { // struct kvm_msrs without its entries
    uint32_t nmsrs;
    uint32_t pad;
};
struct Cpuid2Header { // struct kvm_cpuid2 without its entries
    uint32_t nent;
    uint32_t padding;
};
struct MsrListHeader { // struct kvm_msr_list without its indices
    uint32_t nmsrs;
};
struct Xsave { // struct kvm_xsave (the 4 KiB legacy form)
    uint32_t region[1024];
};
static_assert(sizeof(MsrsHeader) == 8 && sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(Cpuid2Header) == 8 && sizeof(kvm_cpuid_entry2) == 40);

inline constexpr unsigned long k_get_msr_index_list = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long k_get_supported_cpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long k_get_msrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long k_set_msrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long k_set_cpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long k_get_xsave = _IOR(KVMIO, 0xa4, Xsave);
inline constexpr unsigned long k_set_xsave = _IOW(KVMIO, 0xa5, Xsave);
inline constexpr unsigned long k_get_xsave2 = _IOR(KVMIO, 0xcf, Xsave);

// A header followed by n entries, 8-byte aligned, zero-filled.
template<typename Header, typename Entry> class FlexBuffer {
public:
    explicit FlexBuffer(size_t n)
        : m_storage((sizeof(Header) + n * sizeof(Entry) + 7) / 8, 0)
    {
    }
    Header* hdr() { return reinterpret_cast<Header*>(m_storage.data()); }
    // i < n, the count given at construction.
    Entry& entry(size_t i)
    {
        return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(m_storage.data()) + sizeof(Header))[i];
    }

private:
    std::vector<uint64_t> m_storage;
};

class MsrBuffer : public FlexBuffer<MsrsHeader, kvm_msr_entry> {
public:
    explicit MsrBuffer(size_t n)
        : FlexBuffer(n)
    {
        hdr()->nmsrs = uint32_t(n);
    }
};

class CpuidBuffer : public FlexBuffer<Cpuid2Header, kvm_cpuid_entry2> {
public:
    explicit CpuidBuffer(size_t n)
        : FlexBuffer(n)
    {
        hdr()->nent = uint32_t(n);
    }
};

class MsrListBuffer : public FlexBuffer<MsrListHeader, uint32_t> {
public:
    explicit MsrListBuffer(size_t n)
        : FlexBuffer(n)
    {
        hdr()->nmsrs = uint32_t(n);
    }
};

} // namespace kiln::accel::kvm::abi
