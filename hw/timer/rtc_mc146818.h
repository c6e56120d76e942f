// Motorola MC146818 real-time clock and CMOS RAM at ports 0x70 (index;
// bit 7 is the NMI mask) and 0x71 (data). Time is computed from a base
// (seconds since the epoch at virtual time 0, from -rtc base=) plus the
// virtual clock, so it stops while the VM is paused. Periodic, alarm and
// update-ended interrupts raise IRQ 8 until register C is read. The board
// fills the CMOS bytes firmware reads (memory sizes, CPU count).
#pragma once

#include <cstdint>
#include <ctime>

#include "hw/core/clock.h"
#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class RtcMc146818 final : public IoRegion, public DeviceState {
public:
    // base_epoch_s: guest wall time at virtual time 0, in seconds since
    // 1970 (local time already folded in for base=localtime).
    RtcMc146818(VirtualClock& clock, IrqLine& irq8, int64_t base_epoch_s);
    void reset();

    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    // CMOS bytes set by the board (index 0x0e..0x7f).
    void set_cmos(uint8_t index, uint8_t value);
    uint8_t cmos(uint8_t index) const { return m_cmos[index & 0x7f]; }
    // Memory-size bytes: 0x15/0x16 base, 0x17/0x18 + 0x30/0x31 extended
    // (1-64 MiB, KiB), 0x34/0x35 above 16 MiB (64 KiB units), 0x5b-0x5d
    // above 4 GiB (64 KiB units), and the standard checksum.
    void set_memory_size(uint64_t below_4g_bytes, uint64_t above_4g_bytes);
    bool nmi_masked() const { return m_index & 0x80; }

    // Current guest wall time, seconds since 1970.
    int64_t guest_time_s() const;

    std::string state_name() const override { return "mc146818rtc"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    uint8_t to_reg(int v) const;
    int from_reg(uint8_t v) const;
    uint8_t read_time_reg(uint8_t index) const;
    void write_time_reg(uint8_t index, uint8_t v);
    void update_checksum();
    void raise_flags(uint8_t flags);
    void schedule_periodic();
    void schedule_second();
    void periodic_tick();
    void second_tick();

    VirtualClock& m_clock;
    IrqLine& m_irq;
    VirtualTimer m_periodic_timer;
    VirtualTimer m_second_timer;
    int64_t m_base_s;       // guest seconds at virtual time 0
    uint8_t m_index = 0;
    uint8_t m_cmos[128] = {};
    // While SET (reg B bit 7) is on the time registers are frozen copies.
    struct tm m_set_tm = {};
    bool m_set_mode = false;
};

} // namespace kiln::hw
