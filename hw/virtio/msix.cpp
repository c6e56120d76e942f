#include "hw/virtio/msix.h"

namespace kiln::hw {

uint64_t MsixTable::read(uint64_t offset, unsigned size)
{
    auto dword = [this](uint64_t o) -> uint32_t {
        uint32_t word = 0;
        if (o < k_pba_offset) {
            unsigned e = unsigned(o / 16);
            if (e < m_entries.size()) {
                const Entry& x = m_entries[e];
                uint32_t words[4] = { x.addr_lo, x.addr_hi, x.data, x.control };
                word = words[(o / 4) & 3];
            }
        } else {
            unsigned bit0 = unsigned((o - k_pba_offset) * 8);
            for (unsigned b = 0; b < 32; b++)
                if (bit0 + b < m_pending.size() && m_pending[bit0 + b])
                    word |= 1u << b;
        }
        return word;
    };
    if (size == 8)
        return dword(offset & ~3ull) | uint64_t(dword((offset & ~3ull) + 4)) << 32;
    return (dword(offset & ~3ull) >> (8 * (offset & 3))) & size_mask(size);
}

void MsixTable::write(uint64_t offset, unsigned size, uint64_t value)
{
    if (offset >= k_pba_offset || size < 4)
        return; // the PBA is read-only; sub-dword table writes are not allowed
    for (unsigned i = 0; i < size; i += 4) {
        uint64_t o = offset + i;
        unsigned e = unsigned(o / 16);
        if (e >= m_entries.size())
            continue;
        uint32_t word = uint32_t(value >> (8 * i));
        Entry& x = m_entries[e];
        switch ((o / 4) & 3) {
        case 0:
            x.addr_lo = word & ~3u;
            break;
        case 1:
            x.addr_hi = word;
            break;
        case 2:
            x.data = word;
            break;
        case 3:
            x.control = word & 1;
            break;
        }
    }
    deliver_pending();
}

void MsixTable::set_control(bool enabled, bool function_masked)
{
    m_enabled = enabled;
    m_function_masked = function_masked;
    deliver_pending();
}

bool MsixTable::notify(unsigned vector)
{
    if (vector >= m_entries.size())
        return false;
    if (masked(vector)) {
        m_pending[vector] = true;
        return true;
    }
    const Entry& x = m_entries[vector];
    if (m_sink)
        m_sink->deliver_msi(uint64_t(x.addr_hi) << 32 | x.addr_lo, x.data);
    return true;
}

void MsixTable::deliver_pending()
{
    if (!m_enabled)
        return;
    for (unsigned v = 0; v < m_entries.size(); v++) {
        if (m_pending[v] && !masked(v)) {
            m_pending[v] = false;
            notify(v);
        }
    }
}

void MsixTable::reset()
{
    for (auto& e : m_entries)
        e = Entry {};
    m_pending.assign(m_pending.size(), false);
    m_enabled = m_function_masked = false;
}

void MsixTable::save(StateWriter& w) const
{
    for (size_t i = 0; i < m_entries.size(); i++) {
        const Entry& e = m_entries[i];
        w.u32(e.addr_lo);
        w.u32(e.addr_hi);
        w.u32(e.data);
        w.u32(e.control);
        w.boolean(m_pending[i]);
    }
}

Result<void> MsixTable::load(StateReader& r)
{
    for (size_t i = 0; i < m_entries.size(); i++) {
        Entry& e = m_entries[i];
        e.addr_lo = TRY(r.u32());
        e.addr_hi = TRY(r.u32());
        e.data = TRY(r.u32());
        e.control = TRY(r.u32()) & 1;
        m_pending[i] = TRY(r.boolean());
    }
    return ok();
}

} // namespace kiln::hw
