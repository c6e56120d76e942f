#include "accel/kvm/kvm_vm.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "util/log.h"

namespace kiln::accel::kvm {

Result<std::unique_ptr<KvmVm>> KvmVm::create(KvmDevice& device, hw::GuestMemory& memory)
{
    std::unique_ptr<KvmVm> vm(new KvmVm(device, memory));
    // The kernel can fail transiently while tearing down a previous VM.
    do
        vm->m_fd = ioctl(device.fd(), KVM_CREATE_VM, 0);
    while (vm->m_fd < 0 && errno == EINTR);
    if (vm->m_fd < 0)
        return ioctl_error("KVM_CREATE_VM", errno);
    vm->m_readonly_supported = vm->check_extension(KVM_CAP_READONLY_MEM) > 0;
    if (ioctl(vm->m_fd, KVM_SET_TSS_ADDR, static_cast<unsigned long>(k_tss_gpa)) < 0)
        return ioctl_error("KVM_SET_TSS_ADDR", errno);
    if (vm->check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t addr = k_identity_map_gpa;
        if (ioctl(vm->m_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0)
            return ioctl_error("KVM_SET_IDENTITY_MAP_ADDR", errno);
    }
    TRY(vm->sync_memory());
    return vm;
}

KvmVm::~KvmVm()
{
    if (m_fd >= 0)
        close(m_fd);
}

int KvmVm::check_extension(unsigned cap) const
{
    int r = ioctl(m_fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Result<void> KvmVm::set_slot(const MemorySlot& slot)
{
    kvm_userspace_memory_region r {};
    r.slot = slot.id;
    r.guest_phys_addr = slot.guest_base;
    r.memory_size = slot.size_bytes;
    // The region's host mapping covers size_bytes (GuestMemory's invariant).
    r.userspace_addr = reinterpret_cast<uint64_t>(slot.host);
    if (slot.read_only && m_readonly_supported)
        r.flags |= KVM_MEM_READONLY;
    if (slot.dirty_logging)
        r.flags |= KVM_MEM_LOG_DIRTY_PAGES;
    if (ioctl(m_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        char where[96];
        snprintf(where, sizeof where, "KVM_SET_USER_MEMORY_REGION (slot %u at 0x%llx+0x%llx)", slot.id,
            (unsigned long long)slot.guest_base, (unsigned long long)slot.size_bytes);
        return ioctl_error(where, errno);
    }
    return {};
}

Result<void> KvmVm::sync_memory()
{
    for (const hw::RamRegion& region : m_memory.regions()) {
        bool known = false;
        for (auto& s : m_slots)
            known |= s.guest_base == region.guest_base && s.size_bytes == region.size_bytes;
        if (known)
            continue;
        if (region.guest_base < k_kvm_reserved_gpa + k_kvm_reserved_bytes
            && k_kvm_reserved_gpa < region.guest_base + region.size_bytes) {
            char msg[128];
            snprintf(msg, sizeof msg, "guest memory region at 0x%llx overlaps the pages KVM reserves at 0x%llx-0x%llx",
                (unsigned long long)region.guest_base, (unsigned long long)k_kvm_reserved_gpa,
                (unsigned long long)(k_kvm_reserved_gpa + k_kvm_reserved_bytes - 1));
            return Error::invalid(msg);
        }
        MemorySlot slot;
        slot.id = uint32_t(m_slots.size());
        slot.guest_base = region.guest_base;
        slot.size_bytes = region.size_bytes;
        slot.host = region.host;
        slot.read_only = region.read_only;
        if (slot.read_only && !m_readonly_supported)
            Log::warning("kvm: read-only memory is not supported; ROM is writable by the guest");
        TRY(set_slot(slot));
        m_slots.push_back(slot);
    }
    return {};
}

const MemorySlot* KvmVm::slot_for(uint64_t gpa) const
{
    for (auto& s : m_slots)
        if (gpa >= s.guest_base && gpa - s.guest_base < s.size_bytes)
            return &s;
    return nullptr;
}

Result<MemorySlot*> KvmVm::slot_by_id(uint32_t slot_id)
{
    if (slot_id >= m_slots.size())
        return Error::not_found("kvm: no memory slot " + std::to_string(slot_id));
    return &m_slots[slot_id];
}

Result<void> KvmVm::set_dirty_logging(uint32_t slot_id, bool enable)
{
    MemorySlot* slot = TRY(slot_by_id(slot_id));
    if (slot->dirty_logging == enable)
        return {};
    MemorySlot changed = *slot;
    changed.dirty_logging = enable;
    TRY(set_slot(changed));
    *slot = changed;
    return {};
}

Result<std::vector<uint64_t>> KvmVm::get_dirty_log(uint32_t slot_id)
{
    MemorySlot* slot = TRY(slot_by_id(slot_id));
    if (!slot->dirty_logging)
        return Error::invalid("kvm: dirty logging is not enabled on memory slot " + std::to_string(slot_id));
    uint64_t pages = (slot->size_bytes + k_page_bytes - 1) / k_page_bytes;
    std::vector<uint64_t> bitmap((pages + 63) / 64, 0);
    kvm_dirty_log log {};
    log.slot = slot->id;
    log.dirty_bitmap = bitmap.data();
    if (ioctl(m_fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return ioctl_error("KVM_GET_DIRTY_LOG", errno);
    return bitmap;
}

Result<uint64_t> KvmVm::clock_ns() const
{
    kvm_clock_data data {};
    if (ioctl(m_fd, KVM_GET_CLOCK, &data) < 0)
        return ioctl_error("KVM_GET_CLOCK", errno);
    return uint64_t(data.clock);
}

Result<void> KvmVm::set_clock_ns(uint64_t ns)
{
    kvm_clock_data data {};
    data.clock = ns;
    if (ioctl(m_fd, KVM_SET_CLOCK, &data) < 0)
        return ioctl_error("KVM_SET_CLOCK", errno);
    return {};
}

} // namespace kiln::accel::kvm
