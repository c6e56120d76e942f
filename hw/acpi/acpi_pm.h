// ACPI fixed-hardware power management block (PIIX4-style, at 0x600 on
// the PC board): PM1a event (status + enable, 4 bytes), PM1a control
// (2 bytes at +4), PM timer (4 bytes at +8, 3.579545 MHz, 32-bit). SCI is
// a level on IRQ 9 while an enabled status bit is set. Writing SLP_EN with
// SLP_TYP = the DSDT's \_S5 value powers the machine off; the power button
// is the fixed-feature button (PWRBTN_STS). TMR_STS is set each time the
// timer's bit 31 changes and raises SCI when TMR_EN is set.
#pragma once

#include <cstdint>
#include <functional>

#include "hw/core/clock.h"
#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class AcpiPm final : public IoRegion, public DeviceState {
public:
    static constexpr uint16_t k_base_port = 0x600;
    static constexpr unsigned k_region_bytes = 12;
    static constexpr uint8_t k_sci_irq = 9;
    static constexpr uint8_t k_s5_slp_typ = 0; // matches the DSDT's \_S5
    static constexpr uint64_t k_timer_hz = 3579545;

    static constexpr uint16_t k_sts_tmr = 1u << 0, k_sts_pwrbtn = 1u << 8, k_sts_wak = 1u << 15;

    AcpiPm(VirtualClock& clock, IrqLine& sci, std::function<void()> poweroff);
    void reset();

    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    // system_powerdown: press the power button.
    void press_power_button();
    uint32_t timer_value() const;

    std::string state_name() const override { return "acpi-pm"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    void update_sci();
    static uint64_t next_carry_ns(uint64_t now_ns);
    void check_timer_carry();

    VirtualClock& m_clock;
    IrqLine& m_sci;
    std::function<void()> m_poweroff;
    uint16_t m_sts = 0, m_en = 0, m_cnt = 0;
    uint64_t m_tmr_carry_ns = 0; // virtual time of the next bit-31 change
    VirtualTimer m_tmr_timer;    // armed while TMR_EN is set
};

} // namespace kiln::hw
