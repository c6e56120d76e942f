#include "hw/pci/piix3.h"

namespace kiln::hw {

Piix3IsaBridge::Piix3IsaBridge(IrqSink& isa_irqs, IrqSink* apic_pirqs)
    : PciDevice(0x8086, 0x7000, 0x06010000, 0x80), m_isa(isa_irqs), m_apic(apic_pirqs) // multi-function
{
    set_writable(0x60, 4, 0x8f);
    reset();
}

void Piix3IsaBridge::reset()
{
    for (unsigned i = 0; i < 4; i++)
        m_config[0x60 + i] = 0x80;
    update();
}

void Piix3IsaBridge::config_write(unsigned offset, unsigned size, uint32_t value)
{
    PciDevice::config_write(offset, size, value);
    if (offset < 0x64 && offset + size > 0x60)
        update();
}

int Piix3IsaBridge::route(unsigned n) const
{
    uint8_t r = m_config[0x60 + (n & 3)];
    if (r & 0x80)
        return -1;
    r &= 0x0f;
    // IRQ 0, 1, 2, 8 and 13 are reserved and cannot be PIRQ targets.
    if (r < 3 || r == 8 || r == 13)
        return -1;
    return r;
}

void Piix3IsaBridge::set_pirq(unsigned n, bool level)
{
    bool changed = m_pirq[n & 3] != level;
    m_pirq[n & 3] = level;
    if (changed && m_apic)
        m_apic->set_irq(k_first_pirq_gsi + (n & 3), level);
    update();
}

void Piix3IsaBridge::update()
{
    uint16_t want = 0;
    for (unsigned n = 0; n < 4; n++) {
        int irq = route(n);
        if (irq >= 0 && m_pirq[n])
            want |= uint16_t(1u << irq);
    }
    uint16_t changed = want ^ m_driven;
    m_driven = want;
    for (unsigned irq = 0; irq < 16; irq++)
        if (changed & (1u << irq))
            m_isa.set_irq(irq, want & (1u << irq));
}

} // namespace kiln::hw
