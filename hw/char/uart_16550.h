// National 16550A UART (8 ports: RBR/THR/DLL, IER/DLM, IIR/FCR, LCR, MCR,
// LSR, MSR, SCR) with 16-byte FIFOs, trigger levels, the character timeout
// interrupt, THR-empty interrupts, and loopback. Transmitted bytes go to a
// SerialHost (a chardev) at once, so the transmitter is always idle; bytes
// arrive through receive() from the main loop.
#pragma once

#include <cstdint>
#include <deque>
#include <span>

#include "hw/core/clock.h"
#include "hw/core/io_region.h"
#include "hw/core/irq.h"
#include "hw/core/vmstate.h"

namespace kiln::hw {

// The far side of the wire: implemented by system/ over a chardev.
class SerialHost {
public:
    virtual ~SerialHost() = default;
    virtual void transmit(uint8_t byte) = 0;
};

class Uart16550 final : public IoRegion, public DeviceState {
public:
    static constexpr unsigned k_fifo_bytes = 16;
    // COM1..COM4 as the PC places them.
    static constexpr uint16_t k_com_ports[4] = {0x3f8, 0x2f8, 0x3e8, 0x2e8};
    static constexpr uint8_t k_com_irqs[4] = {4, 3, 4, 3};

    Uart16550(unsigned index, VirtualClock& clock, IrqLine& irq, SerialHost* host);
    void reset();

    uint64_t read(uint64_t offset, unsigned size) override;
    void write(uint64_t offset, unsigned size, uint64_t value) override;

    // From the host side: how many bytes the receiver takes now, and
    // delivery. Returns the number accepted.
    size_t can_receive() const;
    size_t receive(std::span<const uint8_t> bytes);
    void set_host(SerialHost* host) { m_host = host; }
    // A break condition on the line (Ctrl-A b): a zero byte with LSR.BI,
    // which Linux turns into magic SysRq.
    void send_break();

    std::string state_name() const override { return "serial" + std::to_string(m_index); }
    uint32_t state_version() const override { return 1; }
    void save_state(StateWriter& w) const override;
    Result<void> load_state(StateReader& r, uint32_t version) override;

private:
    bool fifo_enabled() const { return m_fcr & 1; }
    unsigned trigger_level() const;
    uint64_t char_time_ns() const;
    void update_irq();
    void transmit(uint8_t byte);
    void push_rx(uint8_t byte);
    void arm_timeout();

    unsigned m_index;
    VirtualClock& m_clock;
    IrqLine& m_irq;
    SerialHost* m_host;
    VirtualTimer m_timeout_timer;
    std::deque<uint8_t> m_rx;
    uint16_t m_divisor = 12; // 9600 baud
    uint8_t m_ier = 0, m_iir = 1, m_fcr = 0, m_lcr = 0, m_mcr = 0, m_lsr = 0x60, m_msr = 0, m_scr = 0;
    bool m_thr_ipending = false;
    bool m_timeout_pending = false;
};

} // namespace kiln::hw
