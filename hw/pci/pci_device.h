// PciDevice: a PCI function's 256-byte configuration space with a write
// mask (read-only IDs, class codes, header type). Functions subclass it
// and hook config_write for registers with side effects.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "hw/core/vmstate.h"

namespace kiln::hw {

class PciDevice {
public:
    PciDevice(uint16_t vendor, uint16_t device, uint32_t class_rev, uint8_t header_type);
    virtual ~PciDevice() = default;
    virtual std::string name() const = 0;
    virtual void reset() {}

    uint32_t config_read(unsigned offset, unsigned size) const;
    virtual void config_write(unsigned offset, unsigned size, uint32_t value);

    uint8_t* config() { return m_config; }
    // The dword of the write mask at `offset` (BAR sizes, for `info pci`).
    uint32_t write_mask(unsigned offset) const
    {
        uint32_t v = 0;
        if (offset <= sizeof m_wmask - 4)
            std::memcpy(&v, m_wmask + offset, 4);
        return v;
    }
    void save_config(StateWriter& w) const { w.bytes(m_config); }
    Result<void> load_config(StateReader& r) { return r.bytes(m_config); }

protected:
    void set_u16(unsigned off, uint16_t v) { std::memcpy(m_config + off, &v, 2); }
    void set_u32(unsigned off, uint32_t v) { std::memcpy(m_config + off, &v, 4); }
    void set_writable(unsigned off, unsigned len, uint8_t mask = 0xff)
    {
        std::memset(m_wmask + off, mask, len);
    }

    uint8_t m_config[256] = {};
    uint8_t m_wmask[256] = {};
};

} // namespace kiln::hw
