#include "hw/core/bus.h"

#include <cstdio>

namespace kiln::hw {

BusMapping& BusMapping::operator=(BusMapping&& o) noexcept
{
    if (this != &o) {
        reset();
        m_bus = o.m_bus;
        m_base = o.m_base;
        o.m_bus = nullptr;
    }
    return *this;
}

void BusMapping::reset()
{
    if (m_bus)
        m_bus->unmap(m_base);
    m_bus = nullptr;
}

static std::string range_text(uint64_t base, uint64_t size)
{
    char buf[64];
    snprintf(buf, sizeof buf, "0x%llx-0x%llx", (unsigned long long)base, (unsigned long long)(base + size - 1));
    return buf;
}

Result<BusMapping> IoBus::map(uint64_t base, uint64_t size, IoRegion& region, std::string name)
{
    if (size == 0 || base >= m_limit || size > m_limit - base)
        return Error::invalid(m_name + ": region '" + name + "' at " + range_text(base, size ? size : 1)
                              + " does not fit the bus");
    auto next = m_entries.lower_bound(base);
    if (next != m_entries.end() && next->first < base + size)
        return Error::invalid(m_name + ": region '" + name + "' at " + range_text(base, size) + " overlaps '"
                              + next->second.name + "' at " + range_text(next->first, next->second.size));
    if (next != m_entries.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.size > base)
            return Error::invalid(m_name + ": region '" + name + "' at " + range_text(base, size) + " overlaps '"
                                  + prev->second.name + "' at " + range_text(prev->first, prev->second.size));
    }
    m_entries.emplace(base, Entry{size, &region, std::move(name)});
    return BusMapping(this, base);
}

const std::pair<const uint64_t, IoBus::Entry>* IoBus::find(uint64_t addr) const
{
    auto it = m_entries.upper_bound(addr);
    if (it == m_entries.begin())
        return nullptr;
    --it;
    if (addr - it->first < it->second.size)
        return &*it;
    return nullptr;
}

uint64_t IoBus::read(uint64_t addr, unsigned size)
{
    auto* e = find(addr);
    if (e && addr - e->first + size <= e->second.size)
        return e->second.region->read(addr - e->first, size) & size_mask(size);
    if (!e && size == 1)
        return 0xff;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        auto* b = find(addr + i);
        uint64_t byte = b ? b->second.region->read(addr + i - b->first, 1) & 0xff : 0xff;
        v |= byte << (8 * i);
    }
    return v;
}

void IoBus::write(uint64_t addr, unsigned size, uint64_t value)
{
    auto* e = find(addr);
    if (e && addr - e->first + size <= e->second.size) {
        e->second.region->write(addr - e->first, size, value & size_mask(size));
        return;
    }
    for (unsigned i = 0; i < size; i++)
        if (auto* b = find(addr + i))
            b->second.region->write(addr + i - b->first, 1, (value >> (8 * i)) & 0xff);
}

const std::string* IoBus::name_at(uint64_t addr) const
{
    auto* e = find(addr);
    return e ? &e->second.name : nullptr;
}

} // namespace kiln::hw
