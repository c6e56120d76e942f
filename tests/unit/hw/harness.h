// qtest-like harness for device tests: a manual virtual clock, a port and
// an MMIO bus, IRQ lines whose levels and edges tests read, and helpers to
// poke ports and registers. DeviceHarness hosts single devices;
// MachineHarness builds a whole `pc` board on a manual clock.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "hw/core/bus.h"
#include "hw/core/clock.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"
#include "hw/i386/pc.h"

namespace kiln::hw::test {

// Records what a controller input bank sees.
class IrqRecorder final : public IrqSink {
public:
    void set_irq(unsigned pin, bool level) override
    {
        if (pin >= levels.size())
            levels.resize(pin + 1);
        levels[pin] = level;
        events.push_back({pin, level});
    }
    bool level(unsigned pin) const { return pin < levels.size() && levels[pin]; }
    std::vector<bool> levels;
    std::vector<std::pair<unsigned, bool>> events;
};

class DeviceHarness {
public:
    VirtualClock clock{ClockMode::Manual};
    IoBus pio{"pio", 0x10000};
    IoBus mmio{"mmio", 1ull << 52};
    IrqLine irq[24];

    void map_pio(uint16_t port, uint16_t size, IoRegion& r)
    {
        auto m = pio.map(port, size, r, "dut");
        ASSERT_TRUE(m.ok()) << m.error().message();
        m_maps.push_back(std::move(m).value());
    }
    void map_mmio(uint64_t base, uint64_t size, IoRegion& r)
    {
        auto m = mmio.map(base, size, r, "dut");
        ASSERT_TRUE(m.ok()) << m.error().message();
        m_maps.push_back(std::move(m).value());
    }
    void outb(uint16_t port, uint8_t v) { pio.write(port, 1, v); }
    void outw(uint16_t port, uint16_t v) { pio.write(port, 2, v); }
    void outl(uint16_t port, uint32_t v) { pio.write(port, 4, v); }
    uint8_t inb(uint16_t port) { return uint8_t(pio.read(port, 1)); }
    uint16_t inw(uint16_t port) { return uint16_t(pio.read(port, 2)); }
    uint32_t inl(uint16_t port) { return uint32_t(pio.read(port, 4)); }
    uint32_t readl(uint64_t gpa) { return uint32_t(mmio.read(gpa, 4)); }
    void writel(uint64_t gpa, uint32_t v) { mmio.write(gpa, 4, v); }
    void step_ns(uint64_t ns) { clock.step(ns); }

private:
    std::vector<BusMapping> m_maps;
};

class MachineHarness {
public:
    explicit MachineHarness(uint64_t ram_bytes = 64ull << 20, std::array<SerialHost*, 4> serial = {})
    {
        PcConfig cfg;
        cfg.ram_bytes = ram_bytes;
        cfg.clock_mode = ClockMode::Manual;
        cfg.rtc_base_epoch_s = 1700000000; // 2023-11-14T22:13:20Z
        cfg.serial = serial;
        cfg.serial_present = {true, false, false, false};
        auto m = PcMachine::create(cfg);
        EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message());
        if (m.ok())
            machine = std::move(m).value();
    }
    void outb(uint16_t port, uint8_t v) { machine->pio_write(port, 1, v); }
    uint8_t inb(uint16_t port) { return uint8_t(machine->pio_read(port, 1)); }
    void outl(uint16_t port, uint32_t v) { machine->pio_write(port, 4, v); }
    uint32_t inl(uint16_t port) { return machine->pio_read(port, 4); }
    uint32_t readl(uint64_t gpa) { return uint32_t(machine->mmio_read(gpa, 4)); }
    void writel(uint64_t gpa, uint32_t v) { machine->mmio_write(gpa, 4, v); }
    void step_ns(uint64_t ns) { machine->clock().step(ns); }

    std::unique_ptr<PcMachine> machine;
};

// Saves a device, loads the bytes back into `into`, and checks the load
// consumed exactly what was saved.
inline void state_round_trip(const DeviceState& from, DeviceState& into)
{
    StateWriter w;
    from.save_state(w);
    StateReader r(w.data(), from.state_name());
    auto res = into.load_state(r, from.state_version());
    ASSERT_TRUE(res.ok()) << res.error().message();
    // A truncated section must be refused, never read past its end.
    if (!w.data().empty()) {
        StateReader shorter(std::span(w.data()).first(w.data().size() - 1), from.state_name());
        EXPECT_FALSE(into.load_state(shorter, from.state_version()).ok());
    }
}

} // namespace kiln::hw::test
