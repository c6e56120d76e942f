// PCI host bridge with configuration mechanism #1: CONFIG_ADDRESS at 0xCF8
// (dword) and CONFIG_DATA at 0xCFC-0xCFF, bus 0 only. Absent functions read
// as all ones. A byte access to 0xCF9 is the chipset's reset control
// register, which shares the decode; it is forwarded to `cf9`.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "hw/core/io_region.h"
#include "hw/core/vmstate.h"
#include "hw/pci/pci_device.h"
#include "util/result.h"

namespace kiln::hw {

class PciHost final : public DeviceState {
public:
    explicit PciHost(IoRegion* cf9 = nullptr);

    // Places a function at bus 0, slot, function; fails if taken.
    Result<void> attach(unsigned slot, unsigned function, PciDevice& dev);
    PciDevice* function_at(unsigned slot, unsigned function) const { return m_functions[slot * 8 + function]; }

    IoRegion& address_region() { return m_address_io; } // 4 ports at 0xCF8
    IoRegion& data_region() { return m_data_io; }       // 4 ports at 0xCFC

    uint32_t config_read(unsigned slot, unsigned function, unsigned offset, unsigned size) const;
    void config_write(unsigned slot, unsigned function, unsigned offset, unsigned size, uint32_t value);
    void reset();

    std::string state_name() const override { return "pci-host"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    uint32_t m_address = 0;
    IoRegion* m_cf9;
    std::array<PciDevice*, 256> m_functions{};
    FnRegion m_address_io, m_data_io;
};

// The i440FX host bridge function (00:00.0): IDs only.
class I440fxHostBridge final : public PciDevice {
public:
    I440fxHostBridge() : PciDevice(0x8086, 0x1237, 0x06000002, 0x00) {}
    std::string name() const override { return "i440FX"; }
};

} // namespace kiln::hw
