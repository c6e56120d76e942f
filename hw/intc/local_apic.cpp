#include "hw/intc/local_apic.h"

#include "hw/intc/pic_8259.h"

namespace kiln::hw {

namespace {
constexpr uint32_t k_lvt_masked = 1u << 16;
constexpr uint32_t k_timer_periodic = 1u << 17;
constexpr unsigned k_mode_fixed = 0, k_mode_lowest = 1, k_mode_nmi = 4, k_mode_extint = 7;
constexpr uint32_t k_lvt_write_mask[6] = {0x300ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff};
} // namespace

LocalApic::LocalApic(VirtualClock& clock, PicPair* pic)
    : m_clock(clock), m_pic(pic), m_timer(clock, [this] { timer_fired(); })
{
    reset();
}

void LocalApic::reset()
{
    m_timer.cancel();
    m_base_msr = k_default_base | (1u << 11) | (1u << 8); // enabled, BSP
    m_tpr = 0;
    m_ldr = 0;
    m_dfr = 0xffffffff;
    m_svr = 0xff;
    m_esr = 0;
    m_icr_high = m_icr_low = 0;
    for (unsigned i = 0; i < 8; i++)
        m_irr[i] = m_isr[i] = m_tmr[i] = 0;
    for (auto& l : m_lvt)
        l = k_lvt_masked;
    // As on a PC after firmware: the BSP passes the 8259 through LINT0 and
    // takes NMIs on LINT1, so a kernel booted directly sees legacy IRQs.
    m_lvt[LvtLint0] = k_mode_extint << 8;
    m_lvt[LvtLint1] = k_mode_nmi << 8;
    m_timer_initial = 0;
    m_divide = 0;
    m_nmi_pending = false;
}

void LocalApic::set_base_msr(uint64_t v)
{
    // Only the enable bit and the base move; BSP is fixed, x2APIC refused.
    m_base_msr = (v & 0xfffff000ull & 0xfffffffffull) | (v & (1u << 11)) | (1u << 8);
    if (!hw_enabled()) {
        // Disabling the APIC in the MSR resets it (SDM 10.4.3).
        uint64_t keep = m_base_msr;
        reset();
        m_base_msr = keep;
    }
}

int LocalApic::highest(const uint32_t* bits)
{
    for (int i = 7; i >= 0; i--)
        if (bits[i])
            return i * 32 + 31 - __builtin_clz(bits[i]);
    return -1;
}

uint8_t LocalApic::ppr() const
{
    int isrv = highest(m_isr);
    uint8_t isr_class = isrv < 0 ? 0 : uint8_t(isrv & 0xf0);
    return (m_tpr & 0xf0) >= isr_class ? m_tpr : isr_class;
}

bool LocalApic::matches_destination(uint8_t dest, bool logical) const
{
    if (!logical)
        return dest == 0xff || dest == m_id;
    if (dest == 0xff)
        return true;
    uint8_t ldr = uint8_t(m_ldr >> 24);
    if ((m_dfr >> 28) == 0xf) // flat model
        return (ldr & dest) != 0;
    // cluster model: high nibble = cluster, low nibble = members
    return (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xf) != 0;
}

void LocalApic::accept_fixed(uint8_t vector, bool level)
{
    if (vector < 16) {
        m_esr |= 0x40; // received illegal vector
        return;
    }
    set(m_irr, vector);
    if (level)
        set(m_tmr, vector);
    else
        clear(m_tmr, vector);
    kick();
}

void LocalApic::deliver(uint8_t vector, unsigned delivery_mode, bool level_triggered)
{
    if (!hw_enabled())
        return;
    switch (delivery_mode) {
    case k_mode_fixed:
    case k_mode_lowest:
        if (sw_enabled())
            accept_fixed(vector, level_triggered);
        break;
    case k_mode_nmi:
        m_nmi_pending = true;
        kick();
        break;
    case k_mode_extint:
        kick(); // the vector comes from the PIC at acknowledge time
        break;
    default:
        break; // SMI, INIT, SIPI: single-CPU machine, nothing to start
    }
}

void LocalApic::set_lint(unsigned n, bool level)
{
    if (n > 1 || m_lint_level[n] == level)
        return;
    m_lint_level[n] = level;
    uint32_t lvt = m_lvt[LvtLint0 + n];
    if (lvt & k_lvt_masked)
        return;
    unsigned mode = (lvt >> 8) & 7;
    if (mode == k_mode_extint) {
        if (level)
            kick();
    } else if (level) {
        deliver(uint8_t(lvt & 0xff), mode, (lvt >> 15) & 1);
    }
}

bool LocalApic::interrupt_pending() const
{
    int v = highest(m_irr);
    if (v >= 0 && sw_enabled() && (v & 0xf0) > (ppr() & 0xf0))
        return true;
    uint32_t lint0 = m_lvt[LvtLint0];
    bool extint = !(lint0 & k_lvt_masked) && ((lint0 >> 8) & 7) == k_mode_extint;
    // With the APIC hardware-disabled the 8259 drives INTR directly.
    if (!hw_enabled() || extint)
        return m_pic && m_pic->output();
    return false;
}

uint8_t LocalApic::acknowledge()
{
    int v = highest(m_irr);
    if (v >= 0 && sw_enabled() && (v & 0xf0) > (ppr() & 0xf0)) {
        clear(m_irr, unsigned(v));
        set(m_isr, unsigned(v));
        return uint8_t(v);
    }
    if (m_pic && m_pic->output())
        return m_pic->acknowledge();
    return uint8_t(m_svr & 0xff); // spurious
}

void LocalApic::eoi()
{
    int v = highest(m_isr);
    if (v < 0)
        return;
    clear(m_isr, unsigned(v));
    if (test(m_tmr, unsigned(v)) && m_eoi_handler)
        m_eoi_handler(uint8_t(v));
    if (interrupt_pending())
        kick();
}

uint64_t LocalApic::timer_period_ns() const
{
    unsigned code = (m_divide & 3) | ((m_divide >> 1) & 4);
    uint64_t div = code == 7 ? 1 : 2u << code;
    return uint64_t(m_timer_initial) * div;
}

void LocalApic::timer_start()
{
    m_timer_start_ns = m_clock.now_ns();
    if (m_timer_initial == 0) {
        m_timer.cancel();
        return;
    }
    m_timer.arm_at(m_timer_start_ns + timer_period_ns());
}

void LocalApic::timer_fired()
{
    uint32_t lvt = m_lvt[LvtTimer];
    if (!(lvt & k_lvt_masked))
        deliver(uint8_t(lvt & 0xff), k_mode_fixed, false);
    if (lvt & k_timer_periodic) {
        m_timer_start_ns = m_timer.deadline_ns();
        m_timer.arm_at(m_timer_start_ns + timer_period_ns());
    }
}

uint32_t LocalApic::timer_current_count() const
{
    if (m_timer_initial == 0)
        return 0;
    uint64_t period = timer_period_ns();
    uint64_t elapsed = m_clock.now_ns() - m_timer_start_ns;
    if (!m_timer.armed() && !(m_lvt[LvtTimer] & k_timer_periodic))
        return 0;
    uint64_t div = period / m_timer_initial;
    if (m_lvt[LvtTimer] & k_timer_periodic)
        elapsed %= period;
    if (elapsed >= period)
        return 0;
    return uint32_t((period - elapsed) / div);
}

void LocalApic::write_icr(uint32_t low)
{
    m_icr_low = low & ~(1u << 12); // delivery status: always idle
    unsigned mode = (low >> 8) & 7;
    unsigned shorthand = (low >> 18) & 3;
    uint8_t vector = uint8_t(low & 0xff);
    bool to_self = shorthand == 1 || shorthand == 2
                   || (shorthand == 0 && matches_destination(uint8_t(m_icr_high >> 24), (low >> 11) & 1));
    if (to_self && (mode == k_mode_fixed || mode == k_mode_lowest || mode == k_mode_nmi))
        deliver(vector, mode, false);
}

uint64_t LocalApic::read(uint64_t offset, unsigned size)
{
    if (offset & 0xf)
        return 0;
    unsigned reg = unsigned(offset >> 4);
    switch (reg) {
    case 0x02: return uint32_t(m_id) << 24;
    case 0x03: return 0x00050014; // version 0x14, 6 LVT entries (max LVT 5)
    case 0x08: return m_tpr;
    case 0x09: return 0; // arbitration priority
    case 0x0a: return ppr();
    case 0x0d: return m_ldr;
    case 0x0e: return m_dfr;
    case 0x0f: return m_svr;
    case 0x28: return m_esr;
    case 0x30: return m_icr_low;
    case 0x31: return m_icr_high;
    case 0x38: return m_timer_initial;
    case 0x39: return timer_current_count();
    case 0x3e: return m_divide;
    default: break;
    }
    if (reg >= 0x10 && reg < 0x18)
        return m_isr[reg - 0x10];
    if (reg >= 0x18 && reg < 0x20)
        return m_tmr[reg - 0x18];
    if (reg >= 0x20 && reg < 0x28)
        return m_irr[reg - 0x20];
    if (reg >= 0x32 && reg < 0x38)
        return m_lvt[reg - 0x32];
    return 0;
}

void LocalApic::write(uint64_t offset, unsigned size, uint64_t value)
{
    if (offset & 0xf)
        return;
    uint32_t v = uint32_t(value);
    unsigned reg = unsigned(offset >> 4);
    switch (reg) {
    case 0x02: m_id = uint8_t(v >> 24); return;
    case 0x08:
        m_tpr = uint8_t(v);
        if (interrupt_pending())
            kick();
        return;
    case 0x0b: eoi(); return;
    case 0x0d: m_ldr = v & 0xff000000; return;
    case 0x0e: m_dfr = v | 0x0fffffff; return;
    case 0x0f:
        m_svr = v & 0x3ff;
        if (!sw_enabled())
            for (auto& l : m_lvt)
                l |= k_lvt_masked;
        return;
    case 0x28: m_esr = 0; return;
    case 0x30: write_icr(v); return;
    case 0x31: m_icr_high = v & 0xff000000; return;
    case 0x38:
        m_timer_initial = v;
        timer_start();
        return;
    case 0x3e: m_divide = v & 0xb; return;
    default: break;
    }
    if (reg >= 0x32 && reg < 0x38) {
        unsigned i = reg - 0x32;
        uint32_t nv = v & k_lvt_write_mask[i];
        if (!sw_enabled())
            nv |= k_lvt_masked;
        m_lvt[i] = nv;
        if (i == LvtTimer && m_timer_initial)
            timer_start();
    }
}

void LocalApic::save_state(StateWriter& w) const
{
    w.u64(m_base_msr);
    w.u8(m_id);
    w.u8(m_tpr);
    for (uint32_t v : {m_ldr, m_dfr, m_svr, m_esr, m_icr_high, m_icr_low, m_timer_initial, m_divide})
        w.u32(v);
    for (unsigned i = 0; i < 8; i++) {
        w.u32(m_irr[i]);
        w.u32(m_isr[i]);
        w.u32(m_tmr[i]);
    }
    for (uint32_t l : m_lvt)
        w.u32(l);
    w.u64(m_timer_start_ns);
    w.boolean(m_timer.armed());
    w.u64(m_timer.deadline_ns());
    w.boolean(m_lint_level[0]);
    w.boolean(m_lint_level[1]);
    w.boolean(m_nmi_pending);
}

Result<void> LocalApic::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_base_msr = TRY(r.u64());
    m_id = TRY(r.u8());
    m_tpr = TRY(r.u8());
    for (uint32_t* v : {&m_ldr, &m_dfr, &m_svr, &m_esr, &m_icr_high, &m_icr_low, &m_timer_initial, &m_divide})
        *v = TRY(r.u32());
    for (unsigned i = 0; i < 8; i++) {
        m_irr[i] = TRY(r.u32());
        m_isr[i] = TRY(r.u32());
        m_tmr[i] = TRY(r.u32());
    }
    for (uint32_t& l : m_lvt)
        l = TRY(r.u32());
    m_timer_start_ns = TRY(r.u64());
    bool armed = TRY(r.boolean());
    uint64_t deadline = TRY(r.u64());
    m_lint_level[0] = TRY(r.boolean());
    m_lint_level[1] = TRY(r.boolean());
    m_nmi_pending = TRY(r.boolean());
    TRY(r.finish());
    if (armed)
        m_timer.arm_at(deadline);
    else
        m_timer.cancel();
    return {};
}

} // namespace kiln::hw
