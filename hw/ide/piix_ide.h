// PIIX3 IDE function (00:01.1, 8086:7010) in legacy ("compatibility")
// mode: the primary channel at 0x1F0-0x1F7/0x3F6 on ISA IRQ 14, the
// secondary at 0x170-0x177/0x376 on IRQ 15 (the board maps these), and the
// bus-master registers in BAR4 (16 I/O ports), which the guest places.
#pragma once

#include <memory>

#include "hw/core/bus.h"
#include "hw/ide/ide_channel.h"
#include "hw/pci/pci_bar.h"
#include "hw/pci/pci_device.h"

namespace kiln::hw {

class PiixIde final : public PciDevice, public DeviceState {
public:
    static constexpr uint16_t k_primary_cmd = 0x1f0, k_primary_ctl = 0x3f6;
    static constexpr uint16_t k_secondary_cmd = 0x170, k_secondary_ctl = 0x376;
    static constexpr unsigned k_primary_irq = 14, k_secondary_irq = 15;

    // irq14/irq15: the ISA lines; pio: where BAR4 is placed.
    PiixIde(IrqLine& irq14, IrqLine& irq15, IoBus& pio, const DeviceIoContext& io);
    std::string name() const override { return "piix3-ide"; }
    void reset() override;
    void config_write(unsigned offset, unsigned size, uint32_t value) override;

    IdeChannel& channel(unsigned n) { return *m_channels[n & 1]; }
    // After a werror/rerror=stop pause, when the VM continues.
    void resume();

    std::string state_name() const override { return "piix3-ide"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    std::unique_ptr<IdeChannel> m_channels[2];
    FnRegion m_bm_io;
    PciBars m_bars;
};

} // namespace kiln::hw
