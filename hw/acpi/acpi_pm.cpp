#include "hw/acpi/acpi_pm.h"

namespace kiln::hw {

namespace {
constexpr uint16_t k_cnt_sci_en = 1u << 0;
constexpr uint16_t k_cnt_slp_en = 1u << 13;
} // namespace

AcpiPm::AcpiPm(VirtualClock& clock, IrqLine& sci, std::function<void()> poweroff)
    : m_clock(clock)
    , m_sci(sci)
    , m_poweroff(std::move(poweroff))
    , m_tmr_timer(clock, [this] {
        check_timer_carry();
        update_sci();
    })
{
    reset();
}

uint64_t AcpiPm::next_carry_ns(uint64_t now_ns)
{
    // TMR_STS is set each time the timer's top bit changes: bit 31, as
    // the FADT declares a 32-bit timer (TMR_VAL_EXT); every 2^31 ticks.
    unsigned __int128 ticks = (unsigned __int128)now_ns * k_timer_hz / 1000000000ull;
    unsigned __int128 next = ((ticks >> 31) + 1) << 31;
    return uint64_t((next * 1000000000ull + k_timer_hz - 1) / k_timer_hz);
}

void AcpiPm::check_timer_carry()
{
    uint64_t now = m_clock.now_ns();
    if (now >= m_tmr_carry_ns) {
        m_sts |= k_sts_tmr;
        m_tmr_carry_ns = next_carry_ns(now);
    }
    // Only an enabled TMR_STS needs a timer; a disabled one is computed
    // when the guest reads the status register.
    if (m_en & k_sts_tmr)
        m_tmr_timer.arm_at(m_tmr_carry_ns);
    else
        m_tmr_timer.cancel();
}

void AcpiPm::reset()
{
    m_sts = m_en = 0;
    // No SMI_CMD port: the machine is in ACPI mode from power-on.
    m_cnt = k_cnt_sci_en;
    m_tmr_carry_ns = next_carry_ns(m_clock.now_ns());
    m_tmr_timer.cancel();
    update_sci();
}

uint32_t AcpiPm::timer_value() const
{
    return uint32_t((unsigned __int128)m_clock.now_ns() * k_timer_hz / 1000000000ull);
}

void AcpiPm::update_sci()
{
    m_sci.set_level((m_sts & m_en) && (m_cnt & k_cnt_sci_en));
}

uint64_t AcpiPm::read(uint64_t offset, unsigned size)
{
    check_timer_carry();
    update_sci();
    uint8_t bytes[k_region_bytes];
    uint32_t tmr = timer_value();
    uint16_t words[] = {m_sts, m_en, m_cnt, 0};
    for (unsigned i = 0; i < 4; i++) {
        bytes[2 * i] = uint8_t(words[i]);
        bytes[2 * i + 1] = uint8_t(words[i] >> 8);
    }
    for (unsigned i = 0; i < 4; i++)
        bytes[8 + i] = uint8_t(tmr >> (8 * i));
    uint64_t v = 0;
    for (unsigned i = 0; i < size && offset + i < k_region_bytes; i++)
        v |= uint64_t(bytes[offset + i]) << (8 * i);
    return v;
}

void AcpiPm::write(uint64_t offset, unsigned size, uint64_t value)
{
    // Registers are written as whole words in practice; split bytes so
    // a byte write to the high half works too.
    for (unsigned i = 0; i < size; i++) {
        unsigned off = unsigned(offset) + i;
        uint16_t b = uint16_t((value >> (8 * i)) & 0xff);
        unsigned shift = (off & 1) * 8;
        switch (off & ~1u) {
        case 0: m_sts &= uint16_t(~(b << shift)); break; // write 1 to clear
        case 2: m_en = uint16_t((m_en & ~(0xff << shift)) | (b << shift)) & 0x0721; break;
        case 4: {
            uint16_t cnt = uint16_t((m_cnt & ~(0xff << shift)) | (b << shift));
            if (cnt & k_cnt_slp_en) {
                unsigned typ = (cnt >> 10) & 7;
                cnt &= ~k_cnt_slp_en;
                m_cnt = cnt | k_cnt_sci_en;
                if (typ == k_s5_slp_typ && m_poweroff)
                    m_poweroff();
                // Other sleep states are not offered by the DSDT.
            } else {
                m_cnt = cnt | k_cnt_sci_en;
            }
            break;
        }
        default: break; // PM timer is read-only
        }
    }
    check_timer_carry();
    update_sci();
}

void AcpiPm::press_power_button()
{
    m_sts |= k_sts_pwrbtn;
    update_sci();
}

void AcpiPm::save_state(StateWriter& w) const
{
    w.u16(m_sts);
    w.u16(m_en);
    w.u16(m_cnt);
}

Result<void> AcpiPm::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_sts = TRY(r.u16());
    m_en = TRY(r.u16());
    m_cnt = TRY(r.u16());
    TRY(r.finish());
    m_tmr_carry_ns = next_carry_ns(m_clock.now_ns());
    check_timer_carry();
    update_sci();
    return {};
}

} // namespace kiln::hw
