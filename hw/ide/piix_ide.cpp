#include "hw/ide/piix_ide.h"

namespace kiln::hw {

PiixIde::PiixIde(IrqLine& irq14, IrqLine& irq15, IoBus& pio, const DeviceIoContext& io)
    : PciDevice(0x8086, 0x7010, 0x01018000, 0x00)
    , m_bars(m_config, m_wmask)
{
    m_channels[0] = std::make_unique<IdeChannel>(0, irq14, io);
    m_channels[1] = std::make_unique<IdeChannel>(1, irq15, io);
    m_bm_io = FnRegion([this](uint64_t o, unsigned s) { return m_channels[(o >> 3) & 1]->bm_read(o & 7, s); },
        [this](uint64_t o, unsigned s, uint64_t v) { m_channels[(o >> 3) & 1]->bm_write(o & 7, s, v); });
    m_bars.define(4, PciBarKind::Io, 16, m_bm_io, pio, "piix3-ide-bmdma");
    // QEMU's default subsystem (Red Hat, QEMU), which lspci shows.
    set_u16(0x2c, 0x1af4);
    set_u16(0x2e, 0x1100);
    set_writable(0x40, 4); // IDETIM primary/secondary
    set_writable(0x44, 1); // SIDETIM
    set_writable(0x48, 1); // UDMACTL
    set_writable(0x4a, 2); // UDMATIM
    reset();
}

void PiixIde::reset()
{
    // Both channels decode (IDETIM bit 15), as the BIOS leaves them.
    set_u16(0x40, 0x8000);
    set_u16(0x42, 0x8000);
    m_config[0x04] = 0;
    m_bars.update();
    m_channels[0]->reset();
    m_channels[1]->reset();
}

void PiixIde::config_write(unsigned offset, unsigned size, uint32_t value)
{
    PciDevice::config_write(offset, size, value);
    m_bars.update();
}

void PiixIde::resume()
{
    m_channels[0]->resume();
    m_channels[1]->resume();
}

void PiixIde::save_state(StateWriter& w) const
{
    save_config(w);
    m_channels[0]->save_state(w);
    m_channels[1]->save_state(w);
}

Result<void> PiixIde::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    TRY(load_config(r));
    m_bars.update();
    // The channels' sections are nested in this one.
    TRY(m_channels[0]->load_state(r, 1));
    TRY(m_channels[1]->load_state(r, 1));
    return r.finish();
}

} // namespace kiln::hw
