#include "hw/char/uart_16550.h"

namespace kiln::hw {

namespace {
constexpr uint8_t k_lsr_dr = 0x01, k_lsr_oe = 0x02, k_lsr_bi = 0x10, k_lsr_thre = 0x20, k_lsr_temt = 0x40;
constexpr uint8_t k_lsr_errors = 0x1e;
constexpr uint8_t k_ier_rdi = 0x01, k_ier_thri = 0x02, k_ier_rlsi = 0x04, k_ier_msi = 0x08;
constexpr uint8_t k_iir_none = 0x01, k_iir_msi = 0x00, k_iir_thri = 0x02, k_iir_rdi = 0x04, k_iir_rlsi = 0x06,
                  k_iir_cti = 0x0c;
constexpr uint8_t k_mcr_loop = 0x10, k_mcr_out2 = 0x08;
constexpr uint8_t k_lcr_dlab = 0x80;
} // namespace

Uart16550::Uart16550(unsigned index, VirtualClock& clock, IrqLine& irq, SerialHost* host)
    : m_index(index), m_clock(clock), m_irq(irq), m_host(host), m_timeout_timer(clock, [this] {
          m_timeout_pending = !m_rx.empty();
          update_irq();
      })
{
    reset();
}

void Uart16550::reset()
{
    m_rx.clear();
    m_divisor = 12;
    m_ier = m_fcr = m_lcr = m_mcr = m_scr = 0;
    m_iir = k_iir_none;
    m_lsr = k_lsr_thre | k_lsr_temt;
    m_msr = 0xb0; // CTS, DSR, DCD asserted: a modem-less null cable
    m_thr_ipending = false;
    m_timeout_pending = false;
    m_timeout_timer.cancel();
    m_irq.lower();
}

unsigned Uart16550::trigger_level() const
{
    static constexpr unsigned levels[4] = {1, 4, 8, 14};
    return fifo_enabled() ? levels[m_fcr >> 6] : 1;
}

uint64_t Uart16550::char_time_ns() const
{
    // 10 bits per character at 115200 / divisor baud.
    uint64_t divisor = m_divisor ? m_divisor : 1;
    return 10ull * 1000000000ull * divisor / 115200;
}

void Uart16550::update_irq()
{
    uint8_t iir = k_iir_none;
    if ((m_ier & k_ier_rlsi) && (m_lsr & k_lsr_errors))
        iir = k_iir_rlsi;
    else if ((m_ier & k_ier_rdi) && m_timeout_pending)
        iir = k_iir_cti;
    else if ((m_ier & k_ier_rdi) && !m_rx.empty() && m_rx.size() >= trigger_level())
        iir = k_iir_rdi;
    else if ((m_ier & k_ier_thri) && m_thr_ipending)
        iir = k_iir_thri;
    else if ((m_ier & k_ier_msi) && (m_msr & 0x0f))
        iir = k_iir_msi;
    m_iir = iir | (fifo_enabled() ? 0xc0 : 0);
    // OUT2 gates the interrupt onto the ISA bus on a PC.
    m_irq.set_level(iir != k_iir_none && (m_mcr & k_mcr_out2));
}

void Uart16550::arm_timeout()
{
    if (m_rx.empty())
        m_timeout_timer.cancel();
    else
        m_timeout_timer.arm_in(4 * char_time_ns());
}

void Uart16550::push_rx(uint8_t byte)
{
    size_t cap = fifo_enabled() ? k_fifo_bytes : 1;
    if (m_rx.size() >= cap) {
        m_lsr |= k_lsr_oe;
        return;
    }
    m_rx.push_back(byte);
    m_lsr |= k_lsr_dr;
    if (fifo_enabled())
        arm_timeout();
}

void Uart16550::transmit(uint8_t byte)
{
    if (m_mcr & k_mcr_loop)
        push_rx(byte);
    else if (m_host)
        m_host->transmit(byte);
    m_lsr |= k_lsr_thre | k_lsr_temt;
    m_thr_ipending = true;
}

size_t Uart16550::can_receive() const
{
    if (m_mcr & k_mcr_loop)
        return 0;
    size_t cap = fifo_enabled() ? k_fifo_bytes : 1;
    return m_rx.size() < cap ? cap - m_rx.size() : 0;
}

size_t Uart16550::receive(std::span<const uint8_t> bytes)
{
    size_t n = std::min(bytes.size(), can_receive());
    for (size_t i = 0; i < n; i++)
        push_rx(bytes[i]);
    update_irq();
    return n;
}

void Uart16550::send_break()
{
    push_rx(0);
    m_lsr |= k_lsr_bi;
    update_irq();
}

uint64_t Uart16550::read(uint64_t offset, unsigned size)
{
    uint8_t v = 0xff;
    switch (offset) {
    case 0:
        if (m_lcr & k_lcr_dlab)
            return m_divisor & 0xff;
        v = 0;
        if (!m_rx.empty()) {
            v = m_rx.front();
            m_rx.pop_front();
        }
        if (m_rx.empty())
            m_lsr &= ~k_lsr_dr;
        m_timeout_pending = false;
        if (fifo_enabled())
            arm_timeout();
        update_irq();
        return v;
    case 1:
        return (m_lcr & k_lcr_dlab) ? m_divisor >> 8 : m_ier;
    case 2:
        v = m_iir;
        // Reading IIR while it reports THR empty clears that source.
        if ((v & 0x0f) == k_iir_thri) {
            m_thr_ipending = false;
            update_irq();
        }
        return v;
    case 3: return m_lcr;
    case 4: return m_mcr;
    case 5:
        v = m_lsr;
        m_lsr &= ~(k_lsr_oe | k_lsr_bi | 0x0c);
        if (v & k_lsr_errors)
            update_irq();
        return v;
    case 6:
        if (m_mcr & k_mcr_loop) {
            // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
            uint8_t m = m_mcr;
            return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
        }
        v = m_msr;
        m_msr &= 0xf0; // delta bits clear on read
        update_irq();
        return v;
    case 7: return m_scr;
    }
    return 0xff;
}

void Uart16550::write(uint64_t offset, unsigned size, uint64_t value)
{
    uint8_t v = uint8_t(value);
    switch (offset) {
    case 0:
        if (m_lcr & k_lcr_dlab) {
            m_divisor = uint16_t((m_divisor & 0xff00) | v);
            return;
        }
        m_thr_ipending = false;
        transmit(v);
        update_irq();
        return;
    case 1:
        if (m_lcr & k_lcr_dlab) {
            m_divisor = uint16_t((m_divisor & 0x00ff) | (v << 8));
            return;
        }
        {
            bool thri_was = m_ier & k_ier_thri;
            m_ier = v & 0x0f;
            // Enabling THRI while THR is empty interrupts at once (drivers
            // probe for this).
            if (!thri_was && (m_ier & k_ier_thri) && (m_lsr & k_lsr_thre))
                m_thr_ipending = true;
        }
        update_irq();
        return;
    case 2: {
        bool was = fifo_enabled();
        m_fcr = v & 0xc9;
        if ((v & 1) != was || (v & 0x02)) { // toggling FIFO mode or RX reset clears RX
            m_rx.clear();
            m_lsr &= ~k_lsr_dr;
            m_timeout_pending = false;
            m_timeout_timer.cancel();
        }
        update_irq();
        return;
    }
    case 3: m_lcr = v; return;
    case 4:
        m_mcr = v & 0x1f;
        update_irq();
        return;
    case 5:
    case 6: return; // read-only (factory test)
    case 7: m_scr = v; return;
    }
}

void Uart16550::save_state(StateWriter& w) const
{
    w.u16(m_divisor);
    for (uint8_t b : {m_ier, m_iir, m_fcr, m_lcr, m_mcr, m_lsr, m_msr, m_scr})
        w.u8(b);
    w.boolean(m_thr_ipending);
    w.boolean(m_timeout_pending);
    w.u8(uint8_t(m_rx.size()));
    for (uint8_t b : m_rx)
        w.u8(b);
}

Result<void> Uart16550::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_divisor = TRY(r.u16());
    for (uint8_t* b : {&m_ier, &m_iir, &m_fcr, &m_lcr, &m_mcr, &m_lsr, &m_msr, &m_scr})
        *b = TRY(r.u8());
    m_thr_ipending = TRY(r.boolean());
    m_timeout_pending = TRY(r.boolean());
    uint8_t n = TRY(r.u8());
    if (n > k_fifo_bytes)
        return r.invalid("receive FIFO holds more than 16 bytes");
    m_rx.clear();
    for (unsigned i = 0; i < n; i++)
        m_rx.push_back(TRY(r.u8()));
    TRY(r.finish());
    update_irq();
    arm_timeout();
    return {};
}

} // namespace kiln::hw
