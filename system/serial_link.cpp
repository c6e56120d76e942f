#include "system/serial_link.h"

#include <vector>

namespace kiln::system {

namespace {
constexpr uint64_t k_drain_retry_ns = 1000000; // FIFO full: retry in 1 ms
}

SerialLink::SerialLink(chardev::Chardev& dev, std::unique_ptr<chardev::MuxFilter> mux)
    : m_dev(dev), m_mux(std::move(mux))
{
}

void SerialLink::connect(hw::PcMachine& machine, hw::Uart16550& uart, EventLoop& loop)
{
    m_machine = &machine;
    m_uart = &uart;
    m_loop = &loop;
}

void SerialLink::transmit(uint8_t byte)
{
    if (m_mux) {
        auto out = m_mux->filter_output(std::span<const uint8_t>(&byte, 1), EventLoop::now_ns() - m_start_ns);
        m_dev.write(out);
        return;
    }
    m_dev.write(std::span<const uint8_t>(&byte, 1));
}

void SerialLink::input(std::span<const uint8_t> bytes)
{
    if (m_mux && m_to_monitor) {
        // Byte by byte: Ctrl-A c moves the focus mid-chunk.
        std::vector<uint8_t> to_monitor;
        for (uint8_t b : bytes) {
            bool was_monitor = m_monitor_focus;
            auto filtered = m_mux->filter_input(std::span<const uint8_t>(&b, 1));
            if (was_monitor != m_monitor_focus && !to_monitor.empty()) {
                m_to_monitor(to_monitor);
                to_monitor.clear();
            }
            if (m_monitor_focus)
                to_monitor.insert(to_monitor.end(), filtered.begin(), filtered.end());
            else
                m_pending.insert(m_pending.end(), filtered.begin(), filtered.end());
        }
        if (!to_monitor.empty())
            m_to_monitor(to_monitor);
    } else if (m_mux) {
        auto filtered = m_mux->filter_input(bytes);
        m_pending.insert(m_pending.end(), filtered.begin(), filtered.end());
    } else {
        m_pending.insert(m_pending.end(), bytes.begin(), bytes.end());
    }
    drain();
}

bool SerialLink::toggle_monitor_focus()
{
    if (!m_to_monitor)
        return false;
    m_monitor_focus = !m_monitor_focus;
    if (m_on_focus)
        m_on_focus(m_monitor_focus);
    return true;
}

void SerialLink::drain()
{
    if (!m_machine || m_pending.empty())
        return;
    {
        hw::MachineLock lk(*m_machine);
        std::vector<uint8_t> chunk(m_pending.begin(), m_pending.begin() + std::min<size_t>(m_pending.size(), 64));
        size_t taken = m_uart->receive(chunk);
        m_pending.erase(m_pending.begin(), m_pending.begin() + long(taken));
    }
    if (!m_pending.empty() && !m_drain_armed) {
        m_drain_armed = true;
        m_loop->add_timer_ns(k_drain_retry_ns, [this] {
            m_drain_armed = false;
            drain();
        });
    }
}

} // namespace kiln::system
