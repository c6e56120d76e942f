// MSI-X table and pending-bit array of one PCI function (PCI 3.0 6.8.2).
// The capability's enable and function-mask bits live in config space; the
// owner passes them in. A vector that fires while masked sets its pending
// bit and is delivered when unmasked.
#pragma once

#include <cstdint>
#include <vector>

#include "hw/core/io_region.h"
#include "hw/core/msi.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class MsixTable final : public IoRegion {
public:
    static constexpr uint64_t k_pba_offset = 0x800;
    static constexpr uint64_t k_region_bytes = 0x1000;

    MsixTable(unsigned vectors, MsiSink* sink)
        : m_entries(vectors)
        , m_pending(vectors, false)
        , m_sink(sink)
    {
    }
    unsigned vectors() const { return unsigned(m_entries.size()); }

    // BAR region: table at 0, PBA at k_pba_offset.
    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    // From the capability's message control word.
    void set_control(bool enabled, bool function_masked);
    bool enabled() const { return m_enabled; }
    // Sends vector (or marks it pending). False if out of range.
    bool notify(unsigned vector);
    bool pending(unsigned vector) const { return vector < m_pending.size() && m_pending[vector]; }
    void reset();

    void save(StateWriter& w) const;
    Result<void> load(StateReader& r);

private:
    struct Entry {
        uint32_t addr_lo = 0, addr_hi = 0, data = 0, control = 1; // masked at reset
    };
    bool masked(unsigned v) const { return m_function_masked || (m_entries[v].control & 1); }
    void deliver_pending();

    std::vector<Entry> m_entries;
    std::vector<bool> m_pending;
    MsiSink* m_sink;
    bool m_enabled = false, m_function_masked = false;
};

} // namespace kiln::hw
