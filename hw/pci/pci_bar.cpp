#include "hw/pci/pci_bar.h"

#include <cstring>

#include "util/log.h"

namespace kiln::hw {

void PciBars::define(unsigned bar, PciBarKind kind, uint64_t size, IoRegion& region, IoBus& bus, std::string name)
{
    unsigned off = 0x10 + 4 * bar;
    uint64_t mask = ~(size - 1);
    uint32_t low_bits = kind == PciBarKind::Io ? 0x1 : kind == PciBarKind::Mem64 ? 0x4 : 0x0;
    uint32_t lo = low_bits;
    std::memcpy(m_config + off, &lo, 4);
    uint32_t wlo = uint32_t(mask) & (kind == PciBarKind::Io ? ~0x3u : ~0xfu);
    std::memcpy(m_wmask + off, &wlo, 4);
    if (kind == PciBarKind::Mem64) {
        uint32_t zero = 0, whi = uint32_t(mask >> 32);
        std::memcpy(m_config + off + 4, &zero, 4);
        std::memcpy(m_wmask + off + 4, &whi, 4);
    }
    Bar b { bar, kind, size, &region, &bus, std::move(name) };
    m_bars.push_back(std::move(b));
}

uint64_t PciBars::address(const Bar& b) const
{
    unsigned off = 0x10 + 4 * b.index;
    uint32_t lo;
    std::memcpy(&lo, m_config + off, 4);
    uint64_t a = lo & (b.kind == PciBarKind::Io ? ~0x3u : ~0xfu);
    if (b.kind == PciBarKind::Mem64) {
        uint32_t hi;
        std::memcpy(&hi, m_config + off + 4, 4);
        a |= uint64_t(hi) << 32;
    }
    return a;
}

void PciBars::update()
{
    uint16_t command = uint16_t(m_config[4] | m_config[5] << 8);
    for (Bar& b : m_bars) {
        bool io = b.kind == PciBarKind::Io;
        bool enabled = io ? (command & 1) : (command & 2);
        uint64_t a = address(b);
        uint64_t limit = io ? 0x10000 : (b.kind == PciBarKind::Mem64 ? (1ull << 52) : (1ull << 32));
        // An all-ones sizing write leaves the BAR at the top: not decoded.
        bool valid = enabled && a != 0 && a + b.size <= limit && a + b.size > a
            && a != (~(b.size - 1) & (io ? 0xfffcu : (limit - 1)));
        uint64_t want = valid ? a : 0;
        if (want == b.mapped_at)
            continue;
        b.mapping.reset();
        b.mapped_at = 0;
        if (!want)
            continue;
        auto m = b.bus->map(want, b.size, *b.region, b.name);
        if (!m) {
            if (Log::enabled(LogCategory::Guest))
                Log::write(LogCategory::Guest,
                    b.name + ": BAR" + std::to_string(b.index) + " placement refused: " + m.error().message());
            continue;
        }
        b.mapping = std::move(m).value();
        b.mapped_at = want;
    }
}

uint64_t PciBars::mapped_address(unsigned bar) const
{
    for (const Bar& b : m_bars)
        if (b.index == bar)
            return b.mapped_at;
    return 0;
}

} // namespace kiln::hw
