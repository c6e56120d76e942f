// IoBus: an address space (the 64 KiB port space or guest-physical MMIO)
// on which the board places device regions. Overlapping placements are
// refused when the machine is built; a placement is undone when its
// BusMapping handle dies (RAII), so a device cannot outlive its ports.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "hw/core/io_region.h"
#include "util/result.h"

namespace kiln::hw {

class IoBus;

class BusMapping {
public:
    BusMapping() = default;
    BusMapping(IoBus* bus, uint64_t base) : m_bus(bus), m_base(base) {}
    ~BusMapping() { reset(); }
    BusMapping(BusMapping&& o) noexcept : m_bus(o.m_bus), m_base(o.m_base) { o.m_bus = nullptr; }
    BusMapping& operator=(BusMapping&& o) noexcept;
    BusMapping(const BusMapping&) = delete;
    BusMapping& operator=(const BusMapping&) = delete;
    void reset();
    bool mapped() const { return m_bus != nullptr; }

private:
    IoBus* m_bus = nullptr;
    uint64_t m_base = 0;
};

class IoBus {
public:
    // name appears in errors ("pio", "mmio"); limit is one past the last
    // valid address.
    IoBus(std::string name, uint64_t limit) : m_name(std::move(name)), m_limit(limit) {}
    IoBus(const IoBus&) = delete;
    IoBus& operator=(const IoBus&) = delete;

    // Places `region` at [base, base+size). Fails if it overlaps another
    // placement or leaves the bus.
    [[nodiscard]] Result<BusMapping> map(uint64_t base, uint64_t size, IoRegion& region, std::string name);

    // Accesses; unclaimed addresses read as all ones and drop writes. An
    // access straddling the end of a region is split byte by byte, so a
    // device never sees an offset past its size.
    uint64_t read(uint64_t addr, unsigned size);
    void write(uint64_t addr, unsigned size, uint64_t value);

    // Name of the region at addr (for tests and `info mtree`-like output).
    const std::string* name_at(uint64_t addr) const;
    size_t mapping_count() const { return m_entries.size(); }
    // Visits every placement in address order: f(base, size, name).
    template <class F>
    void for_each_mapping(F&& f) const
    {
        for (const auto& [base, e] : m_entries)
            f(base, e.size, e.name);
    }

private:
    friend class BusMapping;
    struct Entry {
        uint64_t size;
        IoRegion* region;
        std::string name;
    };
    const std::pair<const uint64_t, Entry>* find(uint64_t addr) const;
    void unmap(uint64_t base) { m_entries.erase(base); }

    std::string m_name;
    uint64_t m_limit;
    std::map<uint64_t, Entry> m_entries;
};

} // namespace kiln::hw
