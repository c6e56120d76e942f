#include "hw/pci/pci_device.h"

namespace kiln::hw {

PciDevice::PciDevice(uint16_t vendor, uint16_t device, uint32_t class_rev, uint8_t header_type)
{
    set_u16(0x00, vendor);
    set_u16(0x02, device);
    set_u32(0x08, class_rev);
    m_config[0x0e] = header_type;
    set_u16(0x06, 0x0280); // status: medium DEVSEL, fast back-to-back
    // Command register: I/O, memory, bus master, SERR, INTx disable.
    m_wmask[0x04] = 0x07;
    m_wmask[0x05] = 0x05;
    m_wmask[0x0c] = 0xff; // cache line size
    m_wmask[0x0d] = 0xff; // latency timer
    m_wmask[0x3c] = 0xff; // interrupt line (scratch for the OS)
}

uint32_t PciDevice::config_read(unsigned offset, unsigned size) const
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size && offset + i < 256; i++)
        v |= uint32_t(m_config[offset + i]) << (8 * i);
    return v;
}

void PciDevice::config_write(unsigned offset, unsigned size, uint32_t value)
{
    for (unsigned i = 0; i < size && offset + i < 256; i++) {
        uint8_t m = m_wmask[offset + i];
        uint8_t b = uint8_t(value >> (8 * i));
        m_config[offset + i] = uint8_t((m_config[offset + i] & ~m) | (b & m));
    }
}

} // namespace kiln::hw
