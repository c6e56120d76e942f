// Local APIC (xAPIC, MMIO at IA32_APIC_BASE, normally 0xFEE00000) for the
// interpreter: task/processor priority, IRR/ISR/TMR, EOI with broadcast to
// the IOAPIC for level-triggered vectors, LVTs, the timer (one-shot and
// periodic on the virtual clock; 1 GHz bus clock before the divider), and
// self IPIs. LINT0 in ExtINT mode passes the 8259's output through, so
// interrupt_pending()/acknowledge() are the CPU's whole view of interrupts.
// x2APIC and TSC-deadline mode are not offered (CPUID must not claim them).
#pragma once

#include <cstdint>
#include <functional>

#include "hw/core/clock.h"
#include "hw/core/io_region.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

class PicPair;

class LocalApic final : public IoRegion, public DeviceState {
public:
    static constexpr uint64_t k_default_base = 0xfee00000;

    LocalApic(VirtualClock& clock, PicPair* pic);
    void reset();

    // Register window (4 KiB).
    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    uint8_t id() const { return m_id; }
    uint64_t base_msr() const { return m_base_msr; }
    void set_base_msr(uint64_t v);
    bool hw_enabled() const { return m_base_msr & (1u << 11); }
    bool sw_enabled() const { return m_svr & 0x100; }

    // Interrupt messages from the IOAPIC (or an IPI): delivery mode as in
    // the redirection entry (0 fixed, 1 lowest priority, 4 NMI, 7 ExtINT).
    void deliver(uint8_t vector, unsigned delivery_mode, bool level_triggered);
    // Logical/physical destination match for a message to this APIC.
    bool matches_destination(uint8_t dest, bool logical) const;
    // LINT0/LINT1 input levels (the PIC's INTR on LINT0).
    void set_lint(unsigned n, bool level);

    bool interrupt_pending() const;
    uint8_t acknowledge();
    bool nmi_pending() const { return m_nmi_pending; }
    void acknowledge_nmi() { m_nmi_pending = false; }

    // Level-triggered EOI goes to the IOAPIC (remote IRR).
    void set_eoi_handler(std::function<void(uint8_t)> fn) { m_eoi_handler = std::move(fn); }
    // Wakes a halted vCPU when something becomes pending.
    void set_kick(std::function<void()> fn) { m_kick = std::move(fn); }

    // Timer current count (for tests and the register read).
    uint32_t timer_current_count() const;

    std::string state_name() const override { return "apic"; }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    enum Lvt { LvtTimer, LvtThermal, LvtPerf, LvtLint0, LvtLint1, LvtError, LvtCount };
    static bool test(const uint32_t* bits, unsigned v) { return bits[v >> 5] & (1u << (v & 31)); }
    static void set(uint32_t* bits, unsigned v) { bits[v >> 5] |= 1u << (v & 31); }
    static void clear(uint32_t* bits, unsigned v) { bits[v >> 5] &= ~(1u << (v & 31)); }
    static int highest(const uint32_t* bits);
    uint8_t ppr() const;
    void accept_fixed(uint8_t vector, bool level);
    void eoi();
    void timer_start();
    void timer_fired();
    uint64_t timer_period_ns() const;
    void write_icr(uint32_t low);
    void kick()
    {
        if (m_kick)
            m_kick();
    }

    VirtualClock& m_clock;
    PicPair* m_pic;
    VirtualTimer m_timer;
    uint64_t m_base_msr = 0;
    uint8_t m_id = 0;
    uint8_t m_tpr = 0;
    uint32_t m_ldr = 0, m_dfr = 0xffffffff, m_svr = 0xff, m_esr = 0;
    uint32_t m_icr_high = 0, m_icr_low = 0;
    uint32_t m_irr[8] = {}, m_isr[8] = {}, m_tmr[8] = {};
    uint32_t m_lvt[LvtCount] = {};
    uint32_t m_timer_initial = 0, m_divide = 0;
    uint64_t m_timer_start_ns = 0;
    bool m_lint_level[2] = {};
    bool m_nmi_pending = false;
    std::function<void(uint8_t)> m_eoi_handler;
    std::function<void()> m_kick;
};

} // namespace kiln::hw
