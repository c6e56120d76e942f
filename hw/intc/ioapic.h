// I/O APIC (82093AA-style, version 0x11, 24 pins) at 0xFEC00000: IOREGSEL
// at offset 0, IOWIN at 0x10. Edge pins deliver on a rising edge; level
// pins deliver while asserted and set Remote IRR until the local APIC's
// EOI for that vector. Input polarity is not modelled: a line's level is
// "asserted", whatever the wire's electrical sense (as QEMU does).
#pragma once

#include <cstdint>

#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class LocalApic;

class IoApic final : public IoRegion, public IrqSink, public DeviceState {
public:
    static constexpr uint64_t k_default_base = 0xfec00000;
    static constexpr unsigned k_pins = 24;

    explicit IoApic(LocalApic& lapic) : m_lapic(lapic) { reset(); }
    void reset();

    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;
    void set_irq(unsigned pin, bool level) override;
    // Broadcast EOI from the local APIC.
    void eoi(uint8_t vector);

    uint64_t redirection(unsigned pin) const { return m_redir[pin]; }

    std::string state_name() const override { return "ioapic"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    void service(unsigned pin);
    uint32_t read_reg(uint8_t index) const;
    void write_reg(uint8_t index, uint32_t v);

    LocalApic& m_lapic;
    uint8_t m_select = 0;
    uint8_t m_id = 0;
    uint32_t m_levels = 0; // asserted inputs
    uint64_t m_redir[k_pins] = {};
};

} // namespace kiln::hw
