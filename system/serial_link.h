// SerialLink: joins a guest UART to a chardev. Output (vCPU thread,
// machine lock held) goes through the optional Ctrl-A mux to the chardev;
// input (main loop) is queued and fed to the UART as its FIFO has room.
#pragma once

#include <deque>
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
};

} // namespace kiln::system
