// Intel 8259A programmable interrupt controller: the master/slave pair of
// the PC (ports 0x20/0x21, 0xA0/0xA1) with the ELCR edge/level registers
// at 0x4D0/0x4D1. The slave cascades into master pin 2; the master's
// output goes to the local APIC's LINT0 (ExtINT), which asks acknowledge()
// for the vector during the INTA cycle.
#pragma once

#include <cstdint>
#include <functional>

#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

// One 8259A chip.
class Pic8259Chip {
public:
    void reset();
    void set_irq(unsigned pin, bool level);
    // Highest-priority requested pin that may interrupt now, or -1.
    int pending_irq() const;
    // INTA for `pin`: moves it from IRR to ISR (unless auto-EOI).
    void intack(unsigned pin);
    uint8_t read(unsigned offset);
    void write(unsigned offset, uint8_t value);

    void save(StateWriter& w) const;
    Result<void> load(StateReader& r);

    uint8_t irr = 0, isr = 0, imr = 0;
    uint8_t last_irr = 0; // input levels, for edge detection
    uint8_t irq_base = 0;
    uint8_t priority_add = 0; // lowest-priority pin rotation
    uint8_t init_state = 0;   // 0 = operational, 1..3 = expecting ICW2..ICW4
    bool init4 = false, single = false, auto_eoi = false, rotate_on_aeoi = false;
    bool poll = false, read_isr = false, special_mask = false;
    uint8_t elcr = 0, elcr_mask = 0;

private:
    void init_reset();
    int priority_of(uint8_t mask) const;
};

class PicPair final : public IrqSink, public DeviceState {
public:
    // output_changed(level) drives the CPU's INTR / LAPIC LINT0.
    explicit PicPair(std::function<void(bool)> output_changed);

    // ISA IRQ 0..15.
    void set_irq(unsigned pin, bool level) override;
    bool output() const { return m_output; }
    // INTA: returns the vector to deliver (spurious IRQ 7/15 if none).
    uint8_t acknowledge();
    void reset();

    IoRegion& master_region() { return m_master_io; } // 2 ports at 0x20
    IoRegion& slave_region() { return m_slave_io; }   // 2 ports at 0xA0
    IoRegion& elcr_region() { return m_elcr_io; }     // 2 ports at 0x4D0

    Pic8259Chip& chip(unsigned i) { return i ? m_slave : m_master; }

    std::string state_name() const override { return "i8259"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    void update();

    Pic8259Chip m_master, m_slave;
    bool m_output = false;
    std::function<void(bool)> m_output_changed;
    FnRegion m_master_io, m_slave_io, m_elcr_io;
};

} // namespace kiln::hw
