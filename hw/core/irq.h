// IrqLine: one interrupt wire. A device raises and lowers it; the board
// connects it to one or more interrupt-controller inputs (an ISA IRQ goes
// to both the PIC and the IOAPIC). Level changes are forwarded only when
// the level actually changes, so edge-triggered inputs see clean edges.
#pragma once

#include <vector>

namespace kiln::hw {

// An interrupt-controller input bank (PIC pins, IOAPIC pins, LAPIC LINTs).
class IrqSink {
public:
    virtual ~IrqSink() = default;
    virtual void set_irq(unsigned pin, bool level) = 0;
};

class IrqLine {
public:
    IrqLine() = default;
    IrqLine(const IrqLine&) = delete;
    IrqLine& operator=(const IrqLine&) = delete;

    void connect(IrqSink& sink, unsigned pin) { m_targets.push_back({&sink, pin}); }
    void disconnect_all() { m_targets.clear(); }

    void set_level(bool level)
    {
        if (level == m_level)
            return;
        m_level = level;
        if (level)
            m_rising++;
        for (auto& t : m_targets)
            t.sink->set_irq(t.pin, level);
    }
    void raise() { set_level(true); }
    void lower() { set_level(false); }
    // An edge for edge-triggered consumers (the RTC's periodic tick on ISA).
    void pulse()
    {
        set_level(true);
        set_level(false);
    }
    bool level() const { return m_level; }
    // Counts rising edges; the test harness reads it to see pulses.
    unsigned rising_edges() const { return m_rising; }

private:
    struct Target {
        IrqSink* sink;
        unsigned pin;
    };
    std::vector<Target> m_targets;
    bool m_level = false;
    unsigned m_rising = 0;
};

} // namespace kiln::hw
