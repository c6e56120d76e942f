// VirtualClock: guest time. It stops while the VM is paused and drives the
// PIT, RTC, LAPIC timer, PM timer and the TSC. Two modes: Host (follows the
// host's monotonic clock while running) and Manual (only step() advances
// it, so device tests are exact and never sleep).
//
// Timers fire from run_due(), which the vCPU host calls between guest
// instructions blocks and while halted, with the machine lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>

namespace kiln::hw {

enum class ClockMode { Host, Manual };

class VirtualTimer;

class VirtualClock {
public:
    explicit VirtualClock(ClockMode mode);
    VirtualClock(const VirtualClock&) = delete;
    VirtualClock& operator=(const VirtualClock&) = delete;

    ClockMode mode() const { return m_mode; }
    // May be read without the machine lock (the vCPU's fast interrupt
    // check does); everything else needs it.
    uint64_t now_ns() const;

    void pause();
    void resume();
    bool running() const { return m_running.load(std::memory_order_relaxed); }

    // Manual mode: advances time by delta_ns, firing timers in deadline
    // order at their own deadlines (a timer callback sees now_ns() equal to
    // its deadline, as it would on a real clock).
    void step(uint64_t delta_ns);
    // Migration: sets the current time (both modes).
    void set_now_ns(uint64_t ns);

    // Fires every timer whose deadline has passed. Returns how many fired.
    unsigned run_due();
    // Deadline of the earliest armed timer, or UINT64_MAX.
    uint64_t next_deadline_ns() const;
    // Called (with the machine lock held) when a timer is armed ahead of
    // every other one, so whoever sleeps until the next deadline wakes.
    void set_earlier_deadline_hook(std::function<void()> hook) { m_earlier_deadline_hook = std::move(hook); }

private:
    friend class VirtualTimer;
    void arm(VirtualTimer* t, uint64_t deadline_ns);
    void disarm(VirtualTimer* t);
    static uint64_t host_ns();

    ClockMode m_mode;
    std::atomic<bool> m_running{true};
    std::atomic<uint64_t> m_manual_ns{0};
    // Host mode: now = host_ns() - m_offset_ns while running; frozen value
    // in m_paused_ns while paused.
    std::atomic<uint64_t> m_offset_ns{0};
    std::atomic<uint64_t> m_paused_ns{0};
    std::multimap<uint64_t, VirtualTimer*> m_timers;
    std::function<void()> m_earlier_deadline_hook;
};

// A one-shot timer on a VirtualClock; re-arm from the callback for
// periodic behaviour. Disarmed on destruction.
class VirtualTimer {
public:
    VirtualTimer(VirtualClock& clock, std::function<void()> callback)
        : m_clock(clock), m_callback(std::move(callback))
    {
    }
    ~VirtualTimer() { cancel(); }
    VirtualTimer(const VirtualTimer&) = delete;
    VirtualTimer& operator=(const VirtualTimer&) = delete;

    void arm_at(uint64_t deadline_ns) { m_clock.arm(this, deadline_ns); }
    void arm_in(uint64_t delay_ns) { arm_at(m_clock.now_ns() + delay_ns); }
    void cancel() { m_clock.disarm(this); }
    bool armed() const { return m_armed; }
    uint64_t deadline_ns() const { return m_deadline_ns; }

private:
    friend class VirtualClock;
    VirtualClock& m_clock;
    std::function<void()> m_callback;
    bool m_armed = false;
    uint64_t m_deadline_ns = 0;
    std::multimap<uint64_t, VirtualTimer*>::iterator m_pos;
};

} // namespace kiln::hw
