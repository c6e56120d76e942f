#include "hw/timer/pit_8254.h"

namespace kiln::hw {

namespace {
constexpr uint64_t k_ns = 1000000000ull;
uint64_t ticks_to_ns(uint64_t ticks) { return (ticks * k_ns + Pit8254::k_hz - 1) / Pit8254::k_hz; }
uint64_t ns_to_ticks(uint64_t ns) { return uint64_t((unsigned __int128)ns * Pit8254::k_hz / k_ns); }
} // namespace

Pit8254::Pit8254(VirtualClock& clock, IrqLine& irq0)
    : m_clock(clock), m_irq0(irq0), m_timer(clock, [this] { update_irq(); }),
      m_port61_region(
          [this](uint64_t, unsigned) -> uint64_t {
              // Bit 4 toggles every 15.085 us (DRAM refresh), which old
              // delay loops poll; bit 5 is channel 2's output.
              bool refresh = (m_clock.now_ns() / 15085) & 1;
              return (m_port61 & 3) | (refresh ? 0x10 : 0) | (output(2) ? 0x20 : 0);
          },
          [this](uint64_t, unsigned, uint64_t v) {
              m_port61 = uint8_t(v & 3);
              set_gate(2, v & 1);
          })
{
    reset();
}

void Pit8254::reset()
{
    for (unsigned i = 0; i < 3; i++) {
        m_ch[i] = Channel{};
        m_ch[i].gate = i != 2;
    }
    m_port61 = 0;
    m_timer.cancel();
    m_irq0.lower();
}

uint64_t Pit8254::ticks_since_load(const Channel& c) const
{
    uint64_t now = m_clock.now_ns();
    return now > c.load_ns ? ns_to_ticks(now - c.load_ns) : 0;
}

bool Pit8254::out_at(const Channel& c, uint64_t d) const
{
    uint64_t n = c.count;
    switch (c.mode) {
    case 0: return c.counting && d >= n;
    case 1: return !c.counting || d >= n;
    case 2: return !c.counting || d % n != n - 1;
    case 3: return !c.counting || d % n < (n + 1) / 2;
    case 4:
    case 5: return !c.counting || d != n;
    }
    return true;
}

uint64_t Pit8254::next_change(const Channel& c, uint64_t d) const
{
    if (!c.counting || !c.gate)
        return UINT64_MAX;
    uint64_t n = c.count;
    uint64_t base = d - d % n, r = d % n;
    switch (c.mode) {
    case 0:
    case 1: return d < n ? n : UINT64_MAX;
    case 2: return r < n - 1 ? base + n - 1 : base + n;
    case 3: return r < (n + 1) / 2 ? base + (n + 1) / 2 : base + n;
    case 4:
    case 5: return d < n ? n : d == n ? n + 1 : UINT64_MAX;
    }
    return UINT64_MAX;
}

uint16_t Pit8254::count_at(const Channel& c, uint64_t d) const
{
    if (!c.counting)
        return uint16_t(c.count);
    uint64_t n = c.count;
    switch (c.mode) {
    case 2: return uint16_t(n - d % n);
    case 3: return uint16_t(n - (2 * d) % n); // counts down by two
    default: return uint16_t(n - d);           // wraps past zero like the chip
    }
}

bool Pit8254::output(unsigned ch) const
{
    const Channel& c = m_ch[ch];
    return out_at(c, c.gate ? ticks_since_load(c) : 0);
}

uint16_t Pit8254::current_count(unsigned ch) const
{
    const Channel& c = m_ch[ch];
    return count_at(c, c.gate ? ticks_since_load(c) : 0);
}

void Pit8254::update_irq()
{
    Channel& c = m_ch[0];
    uint64_t d = ticks_since_load(c);
    // The timer may fire late (the vCPU polls timers between blocks).
    // Replay the transitions it slept through, so a periodic rising edge
    // is never lost; runs of missed periods coalesce into one edge.
    if (m_armed_tick != UINT64_MAX && c.counting) {
        uint64_t t = m_armed_tick;
        for (unsigned i = 0; i < 4 && t <= d; i++) {
            m_irq0.set_level(out_at(c, t));
            t = next_change(c, t);
        }
    }
    m_irq0.set_level(out_at(c, d));
    uint64_t next = next_change(c, d);
    m_armed_tick = next;
    if (next == UINT64_MAX)
        m_timer.cancel();
    else
        m_timer.arm_at(c.load_ns + ticks_to_ns(next));
}

void Pit8254::load_count(unsigned ch, uint32_t value)
{
    Channel& c = m_ch[ch];
    if (ch == 0)
        m_armed_tick = UINT64_MAX; // a new count starts a new sequence
    if (value == 0)
        value = 0x10000;
    // Periodic modes need at least 2; a 1 would divide by zero's cousin.
    if ((c.mode == 2 || c.mode == 3) && value < 2)
        value = 2;
    c.count = value;
    c.counting = true;
    c.null_count = false;
    c.load_ns = m_clock.now_ns();
    if (ch == 0)
        update_irq();
}

void Pit8254::latch_count(unsigned ch)
{
    Channel& c = m_ch[ch];
    if (c.latched)
        return; // a second latch before reading is ignored
    c.latched = true;
    c.latch = current_count(ch);
    c.latch_bytes_left = c.rw_mode == 3 ? 2 : 1;
}

void Pit8254::control(uint8_t v)
{
    unsigned sel = v >> 6;
    if (sel == 3) { // read-back
        for (unsigned ch = 0; ch < 3; ch++) {
            if (!(v & (2u << ch)))
                continue;
            if (!(v & 0x20))
                latch_count(ch);
            if (!(v & 0x10) && !m_ch[ch].status_latched) {
                Channel& c = m_ch[ch];
                c.status = uint8_t((output(ch) ? 0x80 : 0) | (c.null_count ? 0x40 : 0) | (c.rw_mode << 4)
                                   | (c.mode << 1));
                c.status_latched = true;
            }
        }
        return;
    }
    unsigned rw = (v >> 4) & 3;
    if (rw == 0) {
        latch_count(sel);
        return;
    }
    Channel& c = m_ch[sel];
    if (sel == 0)
        m_armed_tick = UINT64_MAX;
    c.rw_mode = uint8_t(rw);
    unsigned mode = (v >> 1) & 7;
    c.mode = uint8_t(mode >= 6 ? mode - 4 : mode);
    c.write_msb_next = c.read_msb_next = false;
    c.latched = false;
    c.counting = false;
    c.null_count = true;
    if (sel == 0)
        update_irq();
}

void Pit8254::set_gate(unsigned ch, bool gate)
{
    Channel& c = m_ch[ch];
    if (gate && !c.gate && c.counting && (c.mode == 1 || c.mode == 2 || c.mode == 3 || c.mode == 5))
        c.load_ns = m_clock.now_ns(); // rising gate retriggers
    c.gate = gate;
    if (ch == 0)
        update_irq();
}

uint64_t Pit8254::read(uint64_t offset, unsigned size)
{
    if (offset >= 3)
        return 0xff;
    Channel& c = m_ch[offset];
    if (c.status_latched) {
        c.status_latched = false;
        return c.status;
    }
    uint16_t value = c.latched ? c.latch : current_count(unsigned(offset));
    uint8_t byte;
    switch (c.rw_mode) {
    case 1: byte = uint8_t(value); break;
    case 2: byte = uint8_t(value >> 8); break;
    default:
        byte = c.read_msb_next ? uint8_t(value >> 8) : uint8_t(value);
        c.read_msb_next = !c.read_msb_next;
        break;
    }
    if (c.latched && --c.latch_bytes_left == 0)
        c.latched = false;
    return byte;
}

void Pit8254::write(uint64_t offset, unsigned size, uint64_t value)
{
    uint8_t v = uint8_t(value);
    if (offset == 3) {
        control(v);
        return;
    }
    Channel& c = m_ch[offset];
    switch (c.rw_mode) {
    case 1: load_count(unsigned(offset), v); break;
    case 2: load_count(unsigned(offset), uint32_t(v) << 8); break;
    default:
        if (!c.write_msb_next) {
            c.write_lsb = v;
            c.write_msb_next = true;
            if (c.mode == 0) // writing the first byte stops mode 0 counting
                c.counting = false;
        } else {
            c.write_msb_next = false;
            load_count(unsigned(offset), c.write_lsb | (uint32_t(v) << 8));
        }
        break;
    }
}

void Pit8254::save_state(StateWriter& w) const
{
    for (const Channel& c : m_ch) {
        w.u32(c.count);
        for (uint8_t b : {c.mode, c.rw_mode, c.write_lsb, c.latch_bytes_left, c.status})
            w.u8(b);
        w.u16(c.latch);
        for (bool b : {c.write_msb_next, c.read_msb_next, c.latched, c.status_latched, c.gate, c.counting, c.null_count})
            w.boolean(b);
        w.u64(c.load_ns);
    }
    w.u8(m_port61);
}

Result<void> Pit8254::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    for (Channel& c : m_ch) {
        c.count = TRY(r.u32());
        for (uint8_t* b : {&c.mode, &c.rw_mode, &c.write_lsb, &c.latch_bytes_left, &c.status})
            *b = TRY(r.u8());
        c.latch = TRY(r.u16());
        for (bool* b : {&c.write_msb_next, &c.read_msb_next, &c.latched, &c.status_latched, &c.gate, &c.counting,
                        &c.null_count})
            *b = TRY(r.boolean());
        c.load_ns = TRY(r.u64());
        if (c.count == 0 || c.count > 0x10000 || c.mode > 5 || c.rw_mode < 1 || c.rw_mode > 3)
            return r.invalid("channel count or mode out of range");
        if ((c.mode == 2 || c.mode == 3) && c.count < 2)
            return r.invalid("periodic channel count below 2");
    }
    m_port61 = TRY(r.u8()) & 3;
    TRY(r.finish());
    update_irq();
    return {};
}

} // namespace kiln::hw
