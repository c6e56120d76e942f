#include "hw/timer/rtc_mc146818.h"

#include <cstring>

namespace kiln::hw {

namespace {
constexpr uint8_t k_reg_a = 0x0a, k_reg_b = 0x0b, k_reg_c = 0x0c, k_reg_d = 0x0d;
constexpr uint8_t k_b_set = 0x80, k_b_pie = 0x40, k_b_aie = 0x20, k_b_uie = 0x10, k_b_dm = 0x04, k_b_24h = 0x02;
constexpr uint8_t k_c_irqf = 0x80, k_c_pf = 0x40, k_c_af = 0x20, k_c_uf = 0x10;
constexpr uint64_t k_s = 1000000000ull;
constexpr uint64_t k_uip_ns = 244000; // update cycle length before the second boundary
} // namespace

RtcMc146818::RtcMc146818(VirtualClock& clock, IrqLine& irq8, int64_t base_epoch_s)
    : m_clock(clock), m_irq(irq8), m_periodic_timer(clock, [this] { periodic_tick(); }),
      m_second_timer(clock, [this] { second_tick(); }), m_base_s(base_epoch_s)
{
    reset();
}

void RtcMc146818::reset()
{
    m_cmos[k_reg_a] = 0x26; // 32.768 kHz time base, 1024 Hz rate
    m_cmos[k_reg_b] = k_b_24h;
    m_cmos[k_reg_c] = 0;
    m_cmos[k_reg_d] = 0x80; // valid RAM and time
    m_set_mode = false;
    m_irq.lower();
    m_periodic_timer.cancel();
    schedule_second();
}

int64_t RtcMc146818::guest_time_s() const
{
    return m_base_s + int64_t(m_clock.now_ns() / k_s);
}

uint8_t RtcMc146818::to_reg(int v) const
{
    if (m_cmos[k_reg_b] & k_b_dm)
        return uint8_t(v);
    return uint8_t(((v / 10) << 4) | (v % 10));
}

int RtcMc146818::from_reg(uint8_t v) const
{
    if (m_cmos[k_reg_b] & k_b_dm)
        return v;
    return (v >> 4) * 10 + (v & 0xf);
}

uint8_t RtcMc146818::read_time_reg(uint8_t index) const
{
    struct tm tm;
    if (m_set_mode) {
        tm = m_set_tm;
    } else {
        time_t t = time_t(guest_time_s());
        gmtime_r(&t, &tm);
    }
    switch (index) {
    case 0: return to_reg(tm.tm_sec);
    case 2: return to_reg(tm.tm_min);
    case 4:
        if (m_cmos[k_reg_b] & k_b_24h)
            return to_reg(tm.tm_hour);
        return uint8_t(to_reg(tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12) | (tm.tm_hour >= 12 ? 0x80 : 0));
    case 6: return to_reg(tm.tm_wday + 1);
    case 7: return to_reg(tm.tm_mday);
    case 8: return to_reg(tm.tm_mon + 1);
    case 9: return to_reg(tm.tm_year % 100);
    case 0x32: return to_reg((tm.tm_year + 1900) / 100);
    }
    return 0;
}

void RtcMc146818::write_time_reg(uint8_t index, uint8_t v)
{
    if (!m_set_mode) {
        time_t t = time_t(guest_time_s());
        gmtime_r(&t, &m_set_tm);
    }
    struct tm& tm = m_set_tm;
    switch (index) {
    case 0: tm.tm_sec = from_reg(v) % 60; break;
    case 2: tm.tm_min = from_reg(v) % 60; break;
    case 4:
        if (m_cmos[k_reg_b] & k_b_24h)
            tm.tm_hour = from_reg(v) % 24;
        else
            tm.tm_hour = from_reg(v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
        break;
    case 6: break; // day of week is derived
    case 7: tm.tm_mday = from_reg(v); break;
    case 8: tm.tm_mon = from_reg(v) - 1; break;
    case 9: tm.tm_year = (tm.tm_year + 1900) / 100 * 100 + from_reg(v) - 1900; break;
    case 0x32: tm.tm_year = from_reg(v) * 100 + (tm.tm_year % 100) - 1900; break;
    }
    if (!m_set_mode) {
        // A write without SET takes effect at once.
        m_base_s = int64_t(timegm(&tm)) - int64_t(m_clock.now_ns() / k_s);
    }
}

uint64_t RtcMc146818::read(uint64_t offset, unsigned size)
{
    if (offset == 0)
        return 0xff; // the index register is write-only
    uint8_t index = m_index & 0x7f;
    switch (index) {
    case 0: case 2: case 4: case 6: case 7: case 8: case 9: case 0x32:
        return read_time_reg(index);
    case k_reg_a: {
        uint64_t frac = m_clock.now_ns() % k_s;
        bool uip = !m_set_mode && frac >= k_s - k_uip_ns;
        return (m_cmos[k_reg_a] & 0x7f) | (uip ? 0x80 : 0);
    }
    case k_reg_c: {
        uint8_t v = m_cmos[k_reg_c];
        m_cmos[k_reg_c] = 0;
        m_irq.lower();
        return v;
    }
    default:
        return m_cmos[index];
    }
}

void RtcMc146818::write(uint64_t offset, unsigned size, uint64_t value)
{
    uint8_t v = uint8_t(value);
    if (offset == 0) {
        m_index = v;
        return;
    }
    uint8_t index = m_index & 0x7f;
    switch (index) {
    case 0: case 2: case 4: case 6: case 7: case 8: case 9: case 0x32:
        write_time_reg(index, v);
        return;
    case k_reg_a:
        m_cmos[k_reg_a] = v & 0x7f;
        schedule_periodic();
        return;
    case k_reg_b: {
        bool was_set = m_cmos[k_reg_b] & k_b_set;
        if ((v & k_b_set) && !was_set) {
            time_t t = time_t(guest_time_s());
            gmtime_r(&t, &m_set_tm);
            m_set_mode = true;
        } else if (!(v & k_b_set) && was_set) {
            m_set_mode = false;
            m_base_s = int64_t(timegm(&m_set_tm)) - int64_t(m_clock.now_ns() / k_s);
        }
        // SET clears UIE (datasheet); writes to C/D are ignored below.
        if (v & k_b_set)
            v &= ~k_b_uie;
        m_cmos[k_reg_b] = v;
        schedule_periodic();
        schedule_second();
        return;
    }
    case k_reg_c:
    case k_reg_d:
        return; // read-only
    default:
        m_cmos[index] = v;
        return;
    }
}

void RtcMc146818::raise_flags(uint8_t flags)
{
    m_cmos[k_reg_c] |= flags;
    uint8_t enabled = m_cmos[k_reg_b] & (k_b_pie | k_b_aie | k_b_uie); // same bit positions as C
    if ((m_cmos[k_reg_c] & enabled & 0x70) && !(m_cmos[k_reg_c] & k_c_irqf)) {
        m_cmos[k_reg_c] |= k_c_irqf;
        m_irq.raise();
    }
}

void RtcMc146818::schedule_periodic()
{
    unsigned rate = m_cmos[k_reg_a] & 0xf;
    unsigned divider = (m_cmos[k_reg_a] >> 4) & 7;
    if (rate == 0 || divider != 2 || !(m_cmos[k_reg_b] & k_b_pie)) {
        m_periodic_timer.cancel();
        return;
    }
    if (rate <= 2)
        rate += 7; // rates 1 and 2 alias 8 and 9 with a 32.768 kHz base
    uint64_t period_ns = (k_s << (rate - 1)) / 32768;
    uint64_t now = m_clock.now_ns();
    m_periodic_timer.arm_at((now / period_ns + 1) * period_ns);
}

void RtcMc146818::periodic_tick()
{
    raise_flags(k_c_pf);
    schedule_periodic();
}

void RtcMc146818::schedule_second()
{
    if (m_set_mode || !(m_cmos[k_reg_b] & (k_b_uie | k_b_aie))) {
        m_second_timer.cancel();
        return;
    }
    uint64_t now = m_clock.now_ns();
    m_second_timer.arm_at((now / k_s + 1) * k_s);
}

void RtcMc146818::second_tick()
{
    uint8_t flags = k_c_uf;
    // Alarm: each alarm byte matches, or is "don't care" (top bits 11).
    auto match = [&](uint8_t alarm_idx, uint8_t time_idx) {
        uint8_t a = m_cmos[alarm_idx];
        return (a & 0xc0) == 0xc0 || a == read_time_reg(time_idx);
    };
    if (match(1, 0) && match(3, 2) && match(5, 4))
        flags |= k_c_af;
    raise_flags(flags);
    schedule_second();
}

void RtcMc146818::set_cmos(uint8_t index, uint8_t value)
{
    m_cmos[index & 0x7f] = value;
    update_checksum();
}

void RtcMc146818::set_memory_size(uint64_t below_4g_bytes, uint64_t above_4g_bytes)
{
    m_cmos[0x15] = 0x80; // 640 KiB base memory
    m_cmos[0x16] = 0x02;
    uint64_t ext_kib = below_4g_bytes > (1u << 20) ? (below_4g_bytes - (1u << 20)) / 1024 : 0;
    if (ext_kib > 0xfc00)
        ext_kib = 0xfc00; // 63 MiB: the field stops at 64 MiB
    m_cmos[0x17] = m_cmos[0x30] = uint8_t(ext_kib);
    m_cmos[0x18] = m_cmos[0x31] = uint8_t(ext_kib >> 8);
    uint64_t above16 = below_4g_bytes > (16u << 20) ? (below_4g_bytes - (16u << 20)) >> 16 : 0;
    if (above16 > 0xffff)
        above16 = 0xffff;
    m_cmos[0x34] = uint8_t(above16);
    m_cmos[0x35] = uint8_t(above16 >> 8);
    uint64_t high = above_4g_bytes >> 16;
    m_cmos[0x5b] = uint8_t(high);
    m_cmos[0x5c] = uint8_t(high >> 8);
    m_cmos[0x5d] = uint8_t(high >> 16);
    update_checksum();
}

void RtcMc146818::update_checksum()
{
    unsigned sum = 0;
    for (unsigned i = 0x10; i <= 0x2d; i++)
        sum += m_cmos[i];
    m_cmos[0x2e] = uint8_t(sum >> 8);
    m_cmos[0x2f] = uint8_t(sum);
}

void RtcMc146818::save_state(StateWriter& w) const
{
    w.u64(uint64_t(m_base_s));
    w.u8(m_index);
    w.bytes(m_cmos);
    w.boolean(m_set_mode);
    time_t t = timegm(const_cast<struct tm*>(&m_set_tm));
    w.u64(uint64_t(int64_t(t)));
}

Result<void> RtcMc146818::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_base_s = int64_t(TRY(r.u64()));
    m_index = TRY(r.u8());
    TRY(r.bytes(m_cmos));
    m_set_mode = TRY(r.boolean());
    time_t t = time_t(int64_t(TRY(r.u64())));
    gmtime_r(&t, &m_set_tm);
    TRY(r.finish());
    m_irq.set_level(m_cmos[k_reg_c] & k_c_irqf);
    schedule_periodic();
    schedule_second();
    return {};
}

} // namespace kiln::hw
