// PciBars: base address registers of one PCI function and their placement
// on the port or MMIO bus. The function declares each BAR (kind, size,
// region); after every config write it calls update(), which (re)maps the
// regions the command register enables at the addresses the guest wrote.
// A placement that overlaps another device is refused and logged as a
// guest error: the BAR then decodes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hw/core/bus.h"
#include "hw/core/io_region.h"

namespace kiln::hw {

enum class PciBarKind { Io, Mem32, Mem64 };

class PciBars {
public:
    // config/wmask: the function's configuration space and write mask.
    PciBars(uint8_t* config, uint8_t* wmask)
        : m_config(config)
        , m_wmask(wmask)
    {
    }

    // size must be a power of two (>= 4 for I/O, >= 16 for memory).
    void define(unsigned bar, PciBarKind kind, uint64_t size, IoRegion& region, IoBus& bus, std::string name);
    void update();
    // Guest address of a BAR while it decodes, or 0.
    uint64_t mapped_address(unsigned bar) const;

private:
    struct Bar {
        unsigned index;
        PciBarKind kind;
        uint64_t size;
        IoRegion* region;
        IoBus* bus;
        std::string name;
        uint64_t mapped_at = 0;
        BusMapping mapping;
    };
    uint64_t address(const Bar& b) const;

    uint8_t* m_config;
    uint8_t* m_wmask;
    std::vector<Bar> m_bars;
};

} // namespace kiln::hw
