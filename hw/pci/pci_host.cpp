#include "hw/pci/pci_host.h"

namespace kiln::hw {

PciHost::PciHost(IoRegion* cf9) : m_cf9(cf9)
{
    m_address_io = FnRegion(
        [this](uint64_t off, unsigned size) -> uint64_t {
            if (off == 0 && size == 4)
                return m_address;
            if (off == 1 && size == 1 && m_cf9)
                return m_cf9->read(0, 1);
            return size_mask(size);
        },
        [this](uint64_t off, unsigned size, uint64_t v) {
            if (off == 0 && size == 4)
                m_address = uint32_t(v) & 0x80fffffc;
            else if (off == 1 && size == 1 && m_cf9)
                m_cf9->write(0, 1, v);
        });
    m_data_io = FnRegion(
        [this](uint64_t off, unsigned size) -> uint64_t {
            if (!(m_address & 0x80000000) || ((m_address >> 16) & 0xff) != 0)
                return size_mask(size);
            unsigned devfn = (m_address >> 8) & 0xff;
            return config_read(devfn >> 3, devfn & 7, (m_address & 0xfc) + unsigned(off), size);
        },
        [this](uint64_t off, unsigned size, uint64_t v) {
            if (!(m_address & 0x80000000) || ((m_address >> 16) & 0xff) != 0)
                return;
            unsigned devfn = (m_address >> 8) & 0xff;
            config_write(devfn >> 3, devfn & 7, (m_address & 0xfc) + unsigned(off), size, uint32_t(v));
        });
}

Result<void> PciHost::attach(unsigned slot, unsigned function, PciDevice& dev)
{
    if (slot >= 32 || function >= 8)
        return Error::invalid("PCI address " + std::to_string(slot) + "." + std::to_string(function) + " is invalid");
    PciDevice*& f = m_functions[slot * 8 + function];
    if (f)
        return Error::invalid("PCI: slot " + std::to_string(slot) + " function " + std::to_string(function)
                              + " not available for " + dev.name() + ", in use by " + f->name());
    f = &dev;
    return {};
}

uint32_t PciHost::config_read(unsigned slot, unsigned function, unsigned offset, unsigned size) const
{
    PciDevice* d = m_functions[(slot & 31) * 8 + (function & 7)];
    if (!d || offset + size > 256)
        return uint32_t(size_mask(size));
    return d->config_read(offset, size);
}

void PciHost::config_write(unsigned slot, unsigned function, unsigned offset, unsigned size, uint32_t value)
{
    PciDevice* d = m_functions[(slot & 31) * 8 + (function & 7)];
    if (d && offset + size <= 256)
        d->config_write(offset, size, value);
}

void PciHost::reset()
{
    m_address = 0;
    for (PciDevice* d : m_functions)
        if (d)
            d->reset();
}

void PciHost::save_state(StateWriter& w) const
{
    w.u32(m_address);
    for (PciDevice* d : m_functions)
        if (d)
            d->save_config(w);
}

Result<void> PciHost::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_address = TRY(r.u32());
    for (PciDevice* d : m_functions)
        if (d)
            TRY(d->load_config(r));
    return r.finish();
}

} // namespace kiln::hw
