#include "hw/intc/pic_8259.h"

namespace kiln::hw {

void Pic8259Chip::init_reset()
{
    // ICW1 clears everything but keeps level-triggered requests pending.
    last_irr = 0;
    irr &= elcr;
    imr = isr = 0;
    priority_add = 0;
    irq_base = 0;
    read_isr = poll = special_mask = false;
    init_state = 0;
    auto_eoi = rotate_on_aeoi = init4 = single = false;
}

void Pic8259Chip::reset()
{
    init_reset();
    irr = 0;
    elcr = 0;
}

void Pic8259Chip::set_irq(unsigned pin, bool level)
{
    uint8_t mask = uint8_t(1u << pin);
    if (elcr & mask) {
        if (level) {
            irr |= mask;
            last_irr |= mask;
        } else {
            irr &= ~mask;
            last_irr &= ~mask;
        }
    } else {
        if (level) {
            if (!(last_irr & mask))
                irr |= mask;
            last_irr |= mask;
        } else {
            last_irr &= ~mask;
        }
    }
}

int Pic8259Chip::priority_of(uint8_t mask) const
{
    if (!mask)
        return 8;
    int p = 0;
    while (!(mask & (1u << ((p + priority_add) & 7))))
        p++;
    return p;
}

int Pic8259Chip::pending_irq() const
{
    int p = priority_of(irr & ~imr);
    if (p == 8)
        return -1;
    // In special mask mode masked in-service levels do not block others.
    uint8_t in_service = special_mask ? uint8_t(isr & ~imr) : isr;
    if (p < priority_of(in_service))
        return (p + priority_add) & 7;
    return -1;
}

void Pic8259Chip::intack(unsigned pin)
{
    uint8_t mask = uint8_t(1u << pin);
    if (auto_eoi) {
        if (rotate_on_aeoi)
            priority_add = (pin + 1) & 7;
    } else {
        isr |= mask;
    }
    if (!(elcr & mask))
        irr &= ~mask;
}

uint8_t Pic8259Chip::read(unsigned offset)
{
    if (poll) {
        poll = false;
        int pin = pending_irq();
        if (pin < 0)
            return 0;
        intack(unsigned(pin));
        return uint8_t(0x80 | pin);
    }
    if (offset == 0)
        return read_isr ? isr : irr;
    return imr;
}

void Pic8259Chip::write(unsigned offset, uint8_t v)
{
    if (offset == 0) {
        if (v & 0x10) { // ICW1
            init_reset();
            init_state = 1;
            init4 = v & 1;
            single = v & 2;
        } else if (v & 0x08) { // OCW3
            if (v & 0x04)
                poll = true;
            if (v & 0x02)
                read_isr = v & 1;
            if (v & 0x40)
                special_mask = (v >> 5) & 1;
        } else { // OCW2
            unsigned cmd = v >> 5;
            switch (cmd) {
            case 0: // clear rotate in auto-EOI
            case 4: // set rotate in auto-EOI
                rotate_on_aeoi = cmd == 4;
                break;
            case 1: // non-specific EOI
            case 5: { // rotate on non-specific EOI
                int p = priority_of(isr);
                if (p != 8) {
                    unsigned pin = (p + priority_add) & 7;
                    isr &= ~(1u << pin);
                    if (cmd == 5)
                        priority_add = (pin + 1) & 7;
                }
                break;
            }
            case 3: // specific EOI
                isr &= ~(1u << (v & 7));
                break;
            case 6: // set priority
                priority_add = (v + 1) & 7;
                break;
            case 7: // rotate on specific EOI
                isr &= ~(1u << (v & 7));
                priority_add = ((v & 7) + 1) & 7;
                break;
            default:
                break;
            }
        }
        return;
    }
    switch (init_state) {
    case 0:
        imr = v;
        break;
    case 1:
        irq_base = v & 0xf8;
        init_state = single ? (init4 ? 3 : 0) : 2;
        break;
    case 2: // ICW3: cascade wiring is fixed on the PC
        init_state = init4 ? 3 : 0;
        break;
    case 3:
        auto_eoi = (v >> 1) & 1;
        init_state = 0;
        break;
    }
}

void Pic8259Chip::save(StateWriter& w) const
{
    for (uint8_t b : {irr, isr, imr, last_irr, irq_base, priority_add, init_state, elcr})
        w.u8(b);
    for (bool b : {init4, single, auto_eoi, rotate_on_aeoi, poll, read_isr, special_mask})
        w.boolean(b);
}

Result<void> Pic8259Chip::load(StateReader& r)
{
    for (uint8_t* b : {&irr, &isr, &imr, &last_irr, &irq_base, &priority_add, &init_state, &elcr})
        *b = TRY(r.u8());
    if (init_state > 3)
        return r.invalid("bad init state");
    for (bool* b : {&init4, &single, &auto_eoi, &rotate_on_aeoi, &poll, &read_isr, &special_mask})
        *b = TRY(r.boolean());
    elcr &= elcr_mask;
    return {};
}

PicPair::PicPair(std::function<void(bool)> output_changed) : m_output_changed(std::move(output_changed))
{
    // IRQ 0, 1, 2 (master) and 8, 13 (slave) are always edge-triggered.
    m_master.elcr_mask = 0xf8;
    m_slave.elcr_mask = 0xde;
    auto chip_region = [this](Pic8259Chip& c) {
        return FnRegion([this, &c](uint64_t off, unsigned) -> uint64_t {
                            uint8_t v = c.read(unsigned(off));
                            update();
                            return v;
                        },
                        [this, &c](uint64_t off, unsigned, uint64_t v) {
                            c.write(unsigned(off), uint8_t(v));
                            update();
                        });
    };
    m_master_io = chip_region(m_master);
    m_slave_io = chip_region(m_slave);
    m_elcr_io = FnRegion([this](uint64_t off, unsigned) -> uint64_t { return chip(unsigned(off)).elcr; },
                         [this](uint64_t off, unsigned, uint64_t v) {
                             Pic8259Chip& c = chip(unsigned(off));
                             c.elcr = uint8_t(v) & c.elcr_mask;
                         });
}

void PicPair::set_irq(unsigned pin, bool level)
{
    if (pin >= 16)
        return;
    chip(pin >> 3).set_irq(pin & 7, level);
    update();
}

void PicPair::update()
{
    // Cascade: the slave's INT output is a level on master pin 2.
    if (m_slave.pending_irq() >= 0)
        m_master.irr |= 0x04;
    else
        m_master.irr &= ~0x04;
    bool out = m_master.pending_irq() >= 0;
    if (out != m_output) {
        m_output = out;
        if (m_output_changed)
            m_output_changed(out);
    }
}

uint8_t PicPair::acknowledge()
{
    uint8_t vector;
    int pin = m_master.pending_irq();
    if (pin < 0) {
        vector = m_master.irq_base + 7; // spurious
    } else {
        m_master.intack(unsigned(pin));
        if (pin == 2) {
            int spin = m_slave.pending_irq();
            if (spin >= 0)
                m_slave.intack(unsigned(spin));
            else
                spin = 7;
            vector = uint8_t(m_slave.irq_base + spin);
        } else {
            vector = uint8_t(m_master.irq_base + pin);
        }
    }
    update();
    return vector;
}

void PicPair::reset()
{
    m_master.reset();
    m_slave.reset();
    update();
}

void PicPair::save_state(StateWriter& w) const
{
    m_master.save(w);
    m_slave.save(w);
}

Result<void> PicPair::load_state(StateReader& r, uint32_t version)
{
    TRY(check_state_version(*this, version));
    TRY(m_master.load(r));
    TRY(m_slave.load(r));
    TRY(r.finish());
    m_output = m_master.pending_irq() >= 0;
    if (m_output_changed)
        m_output_changed(m_output);
    return {};
}

} // namespace kiln::hw
