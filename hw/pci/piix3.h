// PIIX3 PCI-to-ISA bridge function (00:01.0, 8086:7000) with the PIRQ
// route control registers 0x60-0x63: PIRQA-D to an ISA IRQ (bit 7
// disables the route). PCI INTx lines from devices are folded through
// set_pirq() and drive the routed ISA IRQ (to both the 8259 and IOAPIC).
#pragma once

#include <cstdint>

#include "hw/core/irq.h"
#include "hw/pci/pci_device.h"

namespace kiln::hw {

class Piix3IsaBridge final : public PciDevice {
public:
    // isa_irqs receives ISA IRQ levels (pins 0..15), normally the board's
    // GSI fan-out to the PIC and IOAPIC. apic_pirqs, if given, also gets
    // PIRQ n on pin 16 + n: the GSIs the DSDT's _PRT names in APIC mode.
    explicit Piix3IsaBridge(IrqSink& isa_irqs, IrqSink* apic_pirqs = nullptr);
    static constexpr unsigned k_first_pirq_gsi = 16;
    std::string name() const override { return "PIIX3"; }
    void reset() override;
    void config_write(unsigned offset, unsigned size, uint32_t value) override;

    // Level of PIRQ n (0..3) from the PCI devices' INTx (already OR-ed).
    void set_pirq(unsigned n, bool level);
    // PIRQ for device `slot`'s INTx pin (1 = INTA): the standard swizzle.
    static unsigned pirq_for(unsigned slot, unsigned intx_pin) { return (slot + intx_pin - 1) & 3; }
    // The ISA IRQ PIRQ n is routed to, or -1.
    int route(unsigned n) const;

private:
    void update();
    IrqSink& m_isa;
    IrqSink* m_apic;
    bool m_pirq[4] = {};
    uint16_t m_driven = 0; // ISA IRQs currently asserted by us
};

} // namespace kiln::hw
