#include "hw/core/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::hw {

static constexpr uint64_t k_4gib = 1ull << 32;

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(uint64_t ram_bytes, uint64_t hole_start)
{
    if (ram_bytes == 0 || (ram_bytes & 0xfff))
        return Error::invalid("guest RAM size must be a non-zero multiple of 4 KiB");
    std::unique_ptr<GuestMemory> mem(new GuestMemory());
    mem->m_memfd = memfd_create("kiln-ram", MFD_CLOEXEC);
    if (mem->m_memfd < 0)
        return Error::from_errno(errno, "memfd_create");
    if (ftruncate(mem->m_memfd, off_t(ram_bytes)) < 0)
        return Error::from_errno(errno, "cannot allocate guest RAM");
    void* map = mmap(nullptr, ram_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem->m_memfd, 0);
    if (map == MAP_FAILED)
        return Error::from_errno(errno, "cannot map guest RAM");
    mem->m_ram_bytes = ram_bytes;
    mem->m_ram_map = static_cast<uint8_t*>(map);
    mem->m_ram_map_bytes = ram_bytes;
    uint64_t low = std::min(ram_bytes, hole_start);
    mem->m_regions.push_back({0, low, 0, mem->m_ram_map, false});
    if (ram_bytes > low)
        mem->m_regions.push_back({k_4gib, ram_bytes - low, low, mem->m_ram_map + low, false});
    return mem;
}

GuestMemory::~GuestMemory()
{
    for (auto& [p, n] : m_rom_maps)
        munmap(p, n);
    if (m_ram_map)
        munmap(m_ram_map, m_ram_map_bytes);
    if (m_memfd >= 0)
        close(m_memfd);
}

Result<void> GuestMemory::add_rom(uint64_t guest_base, std::span<const uint8_t> data, std::string name)
{
    uint64_t size = (data.size() + 0xfff) & ~uint64_t(0xfff);
    if (size == 0)
        return Error::invalid("ROM '" + name + "' is empty");
    for (auto& r : m_regions)
        if (guest_base < r.guest_base + r.size_bytes && r.guest_base < guest_base + size)
            return Error::invalid("ROM '" + name + "' overlaps guest memory");
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return Error::from_errno(errno, "cannot map ROM '" + name + "'");
    std::memcpy(map, data.data(), data.size());
    m_rom_maps.emplace_back(static_cast<uint8_t*>(map), size);
    m_regions.push_back({guest_base, size, 0, static_cast<uint8_t*>(map), true});
    return {};
}

const RamRegion* GuestMemory::find(uint64_t gpa) const
{
    for (auto& r : m_regions)
        if (gpa >= r.guest_base && gpa - r.guest_base < r.size_bytes)
            return &r;
    return nullptr;
}

static Error out_of_ram(uint64_t gpa, uint64_t len)
{
    char buf[96];
    snprintf(buf, sizeof buf, "guest address 0x%llx+0x%llx is not in RAM", (unsigned long long)gpa,
             (unsigned long long)len);
    return Error(ErrorKind::InvalidArgument, buf, EFAULT);
}

Result<std::span<uint8_t>> GuestMemory::host_span(uint64_t gpa, uint64_t len)
{
    const RamRegion* r = find(gpa);
    // Overflow-safe: gpa - base < size holds, so size - (gpa - base) is the room left.
    if (!r || len > r->size_bytes - (gpa - r->guest_base))
        return out_of_ram(gpa, len);
    return std::span<uint8_t>(r->host + (gpa - r->guest_base), len);
}

Result<void> GuestMemory::read(uint64_t gpa, void* dst, uint64_t len) const
{
    auto* out = static_cast<uint8_t*>(dst);
    while (len > 0) {
        const RamRegion* r = find(gpa);
        if (!r)
            return out_of_ram(gpa, len);
        uint64_t n = std::min(len, r->size_bytes - (gpa - r->guest_base));
        std::memcpy(out, r->host + (gpa - r->guest_base), n);
        out += n;
        gpa += n;
        len -= n;
    }
    return {};
}

Result<void> GuestMemory::write(uint64_t gpa, const void* src, uint64_t len)
{
    auto* in = static_cast<const uint8_t*>(src);
    uint64_t start = gpa, total = len;
    while (len > 0) {
        const RamRegion* r = find(gpa);
        if (!r || r->read_only)
            return out_of_ram(gpa, len);
        uint64_t n = std::min(len, r->size_bytes - (gpa - r->guest_base));
        std::memcpy(r->host + (gpa - r->guest_base), in, n);
        in += n;
        gpa += n;
        len -= n;
    }
    notify_written(start, total);
    return {};
}

} // namespace kiln::hw
