#include "hw/core/clock.h"

#include <time.h>

#include <cstdint>

namespace kiln::hw {

uint64_t VirtualClock::host_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

VirtualClock::VirtualClock(ClockMode mode) : m_mode(mode)
{
    if (mode == ClockMode::Host)
        m_offset_ns = host_ns();
}

uint64_t VirtualClock::now_ns() const
{
    if (m_mode == ClockMode::Manual)
        return m_manual_ns;
    return m_running.load(std::memory_order_relaxed) ? host_ns() - m_offset_ns.load(std::memory_order_relaxed)
                                                     : m_paused_ns.load(std::memory_order_relaxed);
}

void VirtualClock::pause()
{
    if (!m_running)
        return;
    m_paused_ns = now_ns();
    m_running = false;
}

void VirtualClock::resume()
{
    if (m_running)
        return;
    if (m_mode == ClockMode::Host)
        m_offset_ns = host_ns() - m_paused_ns;
    m_running = true;
}

void VirtualClock::set_now_ns(uint64_t ns)
{
    if (m_mode == ClockMode::Manual)
        m_manual_ns = ns;
    else if (m_running)
        m_offset_ns = host_ns() - ns;
    else
        m_paused_ns = ns;
}

void VirtualClock::step(uint64_t delta_ns)
{
    uint64_t target = m_manual_ns + delta_ns;
    while (!m_timers.empty() && m_timers.begin()->first <= target) {
        m_manual_ns = std::max(m_manual_ns.load(), m_timers.begin()->first);
        run_due();
    }
    m_manual_ns = target;
}

unsigned VirtualClock::run_due()
{
    unsigned fired = 0;
    uint64_t now = now_ns();
    // Bounded so a timer re-armed at a past deadline cannot spin forever.
    while (!m_timers.empty() && m_timers.begin()->first <= now && fired < 10000) {
        VirtualTimer* t = m_timers.begin()->second;
        m_timers.erase(m_timers.begin());
        t->m_armed = false;
        fired++;
        if (t->m_callback)
            t->m_callback();
    }
    return fired;
}

uint64_t VirtualClock::next_deadline_ns() const
{
    return m_timers.empty() ? UINT64_MAX : m_timers.begin()->first;
}

void VirtualClock::arm(VirtualTimer* t, uint64_t deadline_ns)
{
    disarm(t);
    t->m_deadline_ns = deadline_ns;
    t->m_pos = m_timers.emplace(deadline_ns, t);
    t->m_armed = true;
    if (t->m_pos == m_timers.begin() && m_earlier_deadline_hook)
        m_earlier_deadline_hook();
}

void VirtualClock::disarm(VirtualTimer* t)
{
    if (!t->m_armed)
        return;
    m_timers.erase(t->m_pos);
    t->m_armed = false;
}

} // namespace kiln::hw
