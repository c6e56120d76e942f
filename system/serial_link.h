// SerialLink: joins a guest UART to a chardev. Output (vCPU thread,
// machine lock held) goes through the optional Ctrl-A mux to the chardev;
// input (main loop) is queued and fed to the UART as its FIFO has room.
#pragma once

#include <deque>
#include <functional>
#include <memory>

#include "chardev/chardev.h"
#include "chardev/mux.h"
#include "hw/char/uart_16550.h"
#include "hw/i386/pc.h"
#include "util/event_loop.h"

namespace kiln::system {

class SerialLink final : public hw::SerialHost {
public:
    SerialLink(chardev::Chardev& dev, std::unique_ptr<chardev::MuxFilter> mux);
    // Called once the machine exists.
    void connect(hw::PcMachine& machine, hw::Uart16550& uart, EventLoop& loop);

    void transmit(uint8_t byte) override;
    // Host input (loop thread).
    void input(std::span<const uint8_t> bytes);
    chardev::MuxFilter* mux() { return m_mux.get(); }

    // The monitor on the Ctrl-A mux (system/monitor_setup.cpp): while it
    // has the focus, host input goes to it instead of the UART.
    void set_monitor_input(std::function<void(std::span<const uint8_t>)> to_monitor)
    {
        m_to_monitor = std::move(to_monitor);
    }
    // Called with the new focus (true: monitor) on every Ctrl-A c.
    void set_on_focus(std::function<void(bool)> on_focus) { m_on_focus = std::move(on_focus); }
    // Ctrl-A c; false if no monitor shares this port.
    bool toggle_monitor_focus();
    // Text for the user's terminal (monitor output), unfiltered.
    void write_host(std::span<const uint8_t> bytes) { m_dev.write(bytes); }

private:
    void drain();

    chardev::Chardev& m_dev;
    std::unique_ptr<chardev::MuxFilter> m_mux;
    hw::PcMachine* m_machine = nullptr;
    hw::Uart16550* m_uart = nullptr;
    EventLoop* m_loop = nullptr;
    std::deque<uint8_t> m_pending;
    bool m_drain_armed = false;
    uint64_t m_start_ns = EventLoop::now_ns();
    std::function<void(std::span<const uint8_t>)> m_to_monitor;
    std::function<void(bool)> m_on_focus;
    bool m_monitor_focus = false;
};

} // namespace kiln::system
