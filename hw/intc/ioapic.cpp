#include "hw/intc/ioapic.h"

#include "hw/intc/local_apic.h"

namespace kiln::hw {

namespace {
constexpr uint64_t k_masked = 1ull << 16;
constexpr uint64_t k_level = 1ull << 15;
constexpr uint64_t k_remote_irr = 1ull << 14;
constexpr uint64_t k_delivery_status = 1ull << 12;
// Writable: vector, delivery mode, dest mode, polarity, trigger, mask, dest.
constexpr uint64_t k_writable = 0xff00000000000fffull | (1ull << 13) | k_level | k_masked;
} // namespace

void IoApic::reset()
{
    m_select = 0;
    m_id = 0;
    for (auto& r : m_redir)
        r = k_masked;
}

uint32_t IoApic::read_reg(uint8_t index) const
{
    switch (index) {
    case 0: return uint32_t(m_id) << 24;
    case 1: return ((k_pins - 1) << 16) | 0x11;
    case 2: return uint32_t(m_id) << 24; // arbitration id
    default: break;
    }
    if (index >= 0x10 && index < 0x10 + 2 * k_pins) {
        uint64_t r = m_redir[(index - 0x10) / 2];
        return index & 1 ? uint32_t(r >> 32) : uint32_t(r);
    }
    return 0xffffffff;
}

void IoApic::write_reg(uint8_t index, uint32_t v)
{
    if (index == 0) {
        m_id = (v >> 24) & 0xf;
        return;
    }
    if (index < 0x10 || index >= 0x10 + 2 * k_pins)
        return;
    unsigned pin = (index - 0x10) / 2;
    uint64_t& r = m_redir[pin];
    uint64_t nv = index & 1 ? (r & 0xffffffffull) | (uint64_t(v) << 32) : (r & ~0xffffffffull) | v;
    r = (nv & k_writable) | (r & k_remote_irr);
    if (!(r & k_level))
        r &= ~k_remote_irr;
    service(pin);
}

uint64_t IoApic::read(uint64_t offset, unsigned size)
{
    if (offset == 0)
        return m_select;
    if (offset == 0x10)
        return read_reg(m_select);
    return 0;
}

void IoApic::write(uint64_t offset, unsigned size, uint64_t value)
{
    if (offset == 0)
        m_select = uint8_t(value);
    else if (offset == 0x10)
        write_reg(m_select, uint32_t(value));
    else if (offset == 0x40) // EOI register (version 0x20 feature, harmless)
        eoi(uint8_t(value));
}

void IoApic::service(unsigned pin)
{
    uint64_t& r = m_redir[pin];
    if (!(m_levels & (1u << pin)) || (r & k_masked))
        return;
    bool level = r & k_level;
    if (level) {
        if (r & k_remote_irr)
            return;
        r |= k_remote_irr;
    }
    uint8_t dest = uint8_t(r >> 56);
    bool logical = (r >> 11) & 1;
    if (m_lapic.matches_destination(dest, logical))
        m_lapic.deliver(uint8_t(r & 0xff), unsigned((r >> 8) & 7), level);
    r &= ~k_delivery_status;
}

void IoApic::set_irq(unsigned pin, bool level)
{
    if (pin >= k_pins)
        return;
    uint32_t mask = 1u << pin;
    bool was = m_levels & mask;
    if (level)
        m_levels |= mask;
    else
        m_levels &= ~mask;
    if (!level)
        return;
    // Edge pins fire on the rising edge only; level pins whenever asserted
    // and not waiting for EOI.
    if ((m_redir[pin] & k_level) || !was)
        service(pin);
}

void IoApic::eoi(uint8_t vector)
{
    for (unsigned pin = 0; pin < k_pins; pin++) {
        uint64_t& r = m_redir[pin];
        if ((r & k_level) && (r & 0xff) == vector && (r & k_remote_irr)) {
            r &= ~k_remote_irr;
            service(pin);
        }
    }
}

void IoApic::save_state(StateWriter& w) const
{
    w.u8(m_select);
    w.u8(m_id);
    w.u32(m_levels);
    for (uint64_t r : m_redir)
        w.u64(r);
}

Result<void> IoApic::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    m_select = TRY(r.u8());
    m_id = TRY(r.u8());
    m_levels = TRY(r.u32());
    for (uint64_t& e : m_redir)
        e = TRY(r.u64());
    return r.finish();
}

} // namespace kiln::hw
