// GuestMemory: guest RAM (one memfd, so migration and KVM can map it too)
// placed in guest-physical space, and the checked DMA API through which
// devices and accelerators reach it.
//
// Layout for the PC: RAM below 4 GiB up to the PCI hole, the rest above
// 4 GiB. ROM blobs (firmware, option ROMs) are separate read-only regions.
// Anything not RAM/ROM is MMIO and goes to the machine's MMIO bus.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace kiln::hw {

struct RamRegion {
    uint64_t guest_base = 0;   // guest-physical address
    uint64_t size_bytes = 0;
    uint64_t memfd_offset = 0; // offset of this region within the memfd
    uint8_t* host = nullptr;   // host mapping of the region
    bool read_only = false;    // ROM: guest writes are dropped
};

// Receives notice of writes to guest RAM that did not come from the CPU's
// own stores (DMA, loadvm), so decoded-code caches can be invalidated.
class RamWriteObserver {
public:
    virtual ~RamWriteObserver() = default;
    virtual void ram_written(uint64_t gpa, uint64_t len) = 0;
};

class GuestMemory {
public:
    // RAM of ram_bytes split around [hole_start, 4 GiB).
    static Result<std::unique_ptr<GuestMemory>> create(uint64_t ram_bytes, uint64_t hole_start);
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    uint64_t ram_bytes() const { return m_ram_bytes; }
    int memfd() const { return m_memfd; }
    const std::vector<RamRegion>& regions() const { return m_regions; }

    // Adds a read-only region (firmware), copied from `data`.
    Result<void> add_rom(uint64_t guest_base, std::span<const uint8_t> data, std::string name);

    // The region holding gpa, or nullptr (MMIO or unmapped).
    const RamRegion* find(uint64_t gpa) const;

    // Host span for [gpa, gpa+len) if it lies entirely inside one RAM/ROM
    // region; an error naming the address otherwise. This is the one check
    // that keeps guest-controlled addresses inside Kiln's mapping.
    Result<std::span<uint8_t>> host_span(uint64_t gpa, uint64_t len);

    // DMA: copies that may cross regions; fail with an error (never a host
    // fault) if any byte is outside RAM. Writes to ROM fail too.
    Result<void> read(uint64_t gpa, void* dst, uint64_t len) const;
    Result<void> write(uint64_t gpa, const void* src, uint64_t len);

    template<typename T>
    Result<T> read_value(uint64_t gpa) const
    {
        T v{};
        TRY(read(gpa, &v, sizeof v));
        return v;
    }
    template<typename T>
    Result<void> write_value(uint64_t gpa, T v)
    {
        return write(gpa, &v, sizeof v);
    }

    void set_write_observer(RamWriteObserver* observer) { m_observer = observer; }
    // Devices that write through host_span() spans call this afterwards.
    void notify_written(uint64_t gpa, uint64_t len)
    {
        if (m_observer)
            m_observer->ram_written(gpa, len);
    }

private:
    GuestMemory() = default;

    int m_memfd = -1;
    uint64_t m_ram_bytes = 0;
    uint8_t* m_ram_map = nullptr;
    uint64_t m_ram_map_bytes = 0;
    std::vector<RamRegion> m_regions;
    std::vector<std::pair<uint8_t*, uint64_t>> m_rom_maps;
    RamWriteObserver* m_observer = nullptr;
};

} // namespace kiln::hw
