// Intel 8254 programmable interval timer at ports 0x40-0x43 (1.193182 MHz),
// plus port 0x61 (NMI status and control: speaker gate = channel 2 gate,
// channel 2 output, the refresh toggle) which the PC wires to it. Channel 0
// drives IRQ 0. Counting is computed from the virtual clock, never ticked.
// BCD counting is accepted but counts in binary (no PC software uses it).
#pragma once

#include <cstdint>

#include "hw/core/clock.h"
#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class Pit8254 final : public IoRegion, public DeviceState {
public:
    static constexpr uint64_t k_hz = 1193182;

    Pit8254(VirtualClock& clock, IrqLine& irq0);
    void reset();

    // Ports 0x40..0x43.
    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;
    // Port 0x61.
    IoRegion& port61_region() { return m_port61_region; }

    bool output(unsigned channel) const;
    uint16_t current_count(unsigned channel) const;

    std::string state_name() const override { return "i8254"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    struct Channel {
        uint32_t count = 0x10000; // reload value (0 means 65536)
        uint8_t mode = 0;
        uint8_t rw_mode = 3;      // 1 LSB, 2 MSB, 3 LSB then MSB
        bool write_msb_next = false;
        bool read_msb_next = false;
        uint8_t write_lsb = 0;
        bool latched = false;
        uint16_t latch = 0;
        uint8_t latch_bytes_left = 0;
        bool status_latched = false;
        uint8_t status = 0;
        bool gate = true;
        bool counting = false; // a count has been written since the mode
        bool null_count = true;
        uint64_t load_ns = 0;
    };
    uint64_t ticks_since_load(const Channel& c) const;
    bool out_at(const Channel& c, uint64_t d) const;
    // Tick (since load) of the next output change after tick d, or UINT64_MAX.
    uint64_t next_change(const Channel& c, uint64_t d) const;
    uint16_t count_at(const Channel& c, uint64_t d) const;
    void load_count(unsigned ch, uint32_t value);
    void control(uint8_t v);
    void latch_count(unsigned ch);
    void set_gate(unsigned ch, bool gate);
    void update_irq();

    VirtualClock& m_clock;
    IrqLine& m_irq0;
    VirtualTimer m_timer;
    Channel m_ch[3];
    uint64_t m_armed_tick = UINT64_MAX; // channel 0 transition the timer waits for
    uint8_t m_port61 = 0; // bits 0 (gate 2) and 1 (speaker data)
    FnRegion m_port61_region;
};

} // namespace kiln::hw
