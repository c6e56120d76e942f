// KvmVm: one KVM virtual machine: its fd, guest RAM mapped into it as
// memory slots (one per GuestMemory region; ROM read-only), the two pages
// VMX needs for real mode, and dirty-page logging for migration.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "accel/kvm/kvm_device.h"
#include "hw/core/guest_memory.h"
#include "util/result.h"

namespace kiln::accel::kvm {

// VMX (Intel) runs real mode and unpaged protected mode on an identity
// page table and a TSS that KVM keeps in guest-physical memory. Kiln
// places them where QEMU does, just below the BIOS: the board must leave
// [k_kvm_reserved_gpa, +k_kvm_reserved_bytes) unmapped (no RAM, no MMIO).
inline constexpr uint64_t k_identity_map_gpa = 0xfeffc000; // one page
inline constexpr uint64_t k_tss_gpa = 0xfeffd000; // three pages
inline constexpr uint64_t k_kvm_reserved_gpa = 0xfeffc000;
inline constexpr uint64_t k_kvm_reserved_bytes = 0x4000;
inline constexpr uint64_t k_page_bytes = 4096;

struct MemorySlot {
    uint32_t id = 0;
    uint64_t guest_base = 0;
    uint64_t size_bytes = 0;
    uint8_t* host = nullptr;
    bool read_only = false; // ROM as KVM_MEM_READONLY: writes exit as MMIO
    bool dirty_logging = false; // KVM_MEM_LOG_DIRTY_PAGES
};

class KvmVm {
public:
    // Creates the VM and maps every region `memory` has now.
    static Result<std::unique_ptr<KvmVm>> create(KvmDevice& device, hw::GuestMemory& memory);
    ~KvmVm();
    KvmVm(const KvmVm&) = delete;
    KvmVm& operator=(const KvmVm&) = delete;

    int fd() const { return m_fd; }
    KvmDevice& device() { return m_device; }
    hw::GuestMemory& memory() { return m_memory; }
    int check_extension(unsigned cap) const;

    // Maps regions added to GuestMemory since the last call (ROMs the
    // board loads after creating the VM).
    Result<void> sync_memory();
    const std::vector<MemorySlot>& slots() const { return m_slots; }
    const MemorySlot* slot_for(uint64_t gpa) const;
    bool read_only_memory_supported() const { return m_readonly_supported; }

    // Dirty-page logging, per slot. The bitmap has one bit per 4 KiB page
    // of the slot (bit i of word i/64 = page i), set for pages written
    // since the previous call; KVM clears its copy as it hands it over.
    Result<void> set_dirty_logging(uint32_t slot_id, bool enable);
    Result<std::vector<uint64_t>> get_dirty_log(uint32_t slot_id);

    // The kvmclock epoch (KVM_GET/SET_CLOCK), in ns: saved with the VM so
    // a restored guest's kvmclock continues instead of jumping.
    Result<uint64_t> clock_ns() const;
    Result<void> set_clock_ns(uint64_t ns);

private:
    KvmVm(KvmDevice& device, hw::GuestMemory& memory)
        : m_device(device)
        , m_memory(memory)
    {
    }
    Result<void> set_slot(const MemorySlot& slot);
    Result<MemorySlot*> slot_by_id(uint32_t slot_id);

    KvmDevice& m_device;
    hw::GuestMemory& m_memory;
    int m_fd = -1;
    bool m_readonly_supported = false;
    std::vector<MemorySlot> m_slots;
};

} // namespace kiln::accel::kvm
