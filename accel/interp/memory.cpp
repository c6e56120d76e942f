// Guest memory as the CPU sees it: segmentation (offset -> linear), paging
// (linear -> physical, with the software TLB), and physical access (RAM
// through a host pointer, everything else through the host's MMIO calls).
#include <cstring>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

bool canonical(uint64_t lin) { return uint64_t(int64_t(lin << 16) >> 16) == lin; }

} // namespace

uint64_t InterpreterImpl::linear(Seg seg, uint64_t offset, unsigned size, Access access)
{
    unsigned si = static_cast<unsigned>(seg);
    if (m_mode64) {
        uint64_t lin = offset;
        if (seg == Seg::FS || seg == Seg::GS)
            lin += m_s.seg[si].base;
        if (!canonical(lin) || !canonical(lin + size - 1)) [[unlikely]]
            raise(seg == Seg::SS ? k_ss : k_gp, 0);
        return lin;
    }
    const SegmentCache& sc = m_s.seg[si];
    uint8_t fault = seg == Seg::SS ? k_ss : k_gp;
    uint32_t first = uint32_t(offset);
    uint64_t last = offset + size - 1;
    if (m_s.protected_mode() && !m_s.v8086()) {
        if (!(sc.attr & k_seg_p)) [[unlikely]]
            raise(fault, 0);
        unsigned type = sc.attr & k_seg_type_mask;
        bool code = type & 0x8;
        if (access == Access::Write && (code || !(type & 0x2))) [[unlikely]]
            raise(fault, 0);
        if (access == Access::Read && code && !(type & 0x2)) [[unlikely]]
            raise(fault, 0);
        if (!code && (type & 0x4)) {
            // Expand-down: valid offsets are (limit, 64K-1 or 4G-1].
            uint64_t top = (sc.attr & k_seg_db) ? 0xffffffffull : 0xffffull;
            if (first <= sc.limit || last > top) [[unlikely]]
                raise(fault, 0);
            return (sc.base + offset) & 0xffffffff;
        }
    }
    if (last > sc.limit) [[unlikely]]
        raise(fault, 0);
    return (sc.base + offset) & 0xffffffff;
}

uint64_t InterpreterImpl::phys_read(uint64_t gpa, unsigned size)
{
    if (const hw::RamRegion* r = m_mem.find(gpa); r && gpa + size <= r->guest_base + r->size_bytes) {
        uint64_t v = 0;
        // In bounds: find() placed gpa inside r and the check above covers the end.
        std::memcpy(&v, r->host + (gpa - r->guest_base), size);
        return v;
    }
    if (m_mem.find(gpa)) {
        // Straddles the end of a region: byte by byte.
        uint64_t v = 0;
        for (unsigned i = 0; i < size; i++)
            v |= phys_read(gpa + i, 1) << (8 * i);
        return v;
    }
    m_check_irq = true;
    return m_host.mmio_read(gpa, size);
}

void InterpreterImpl::phys_write(uint64_t gpa, unsigned size, uint64_t v)
{
    if (const hw::RamRegion* r = m_mem.find(gpa)) {
        if (gpa + size > r->guest_base + r->size_bytes) {
            for (unsigned i = 0; i < size; i++)
                phys_write(gpa + i, 1, v >> (8 * i));
            return;
        }
        if (r->read_only)
            return; // ROM: writes are dropped
        std::memcpy(r->host + (gpa - r->guest_base), &v, size);
        code_page_written(gpa);
        if (((gpa + size - 1) >> 12) != (gpa >> 12))
            code_page_written(gpa + size - 1);
        return;
    }
    m_check_irq = true;
    m_host.mmio_write(gpa, size, v);
}

// ---- Code pages and the decoded-instruction cache ----

void InterpreterImpl::note_code_page(uint64_t gpa)
{
    uint64_t page = gpa >> 12;
    if (page >= m_pages || m_page_has_code[page])
        return;
    m_page_has_code[page] = 1;
    // Stores to this page must now take the slow path that invalidates.
    for (auto& per_user : m_tlb[static_cast<unsigned>(Access::Write)])
        for (auto& e : per_user)
            if (e.vpage != ~0ull && (e.gpa >> 12) == page)
                e.clear();
}

void InterpreterImpl::code_page_written(uint64_t gpa)
{
    uint64_t page = gpa >> 12;
    if (page >= m_pages || !m_page_has_code[page])
        return;
    m_page_has_code[page] = 0;
    m_page_gen[page].fetch_add(1, std::memory_order_relaxed);
    // The running block may hold instructions decoded from this page.
    m_block_end = true;
}

void InterpreterImpl::invalidate_code(uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return;
    uint64_t first = gpa >> 12, last = (gpa + len - 1) >> 12;
    for (uint64_t p = first; p <= last && p < m_pages; p++)
        m_page_gen[p].fetch_add(1, std::memory_order_relaxed);
}

// ---- Paging ----

bool InterpreterImpl::page_walk(uint64_t lin, Access access, bool user, uint64_t& gpa, bool& global, bool& writable_ok)
{
    global = false;
    writable_ok = true;
    m_last_walk_user = false;
    m_last_walk_shift = 12;
    if (!m_s.paging()) {
        gpa = lin & (m_s.long_mode_active() ? ~0ull : 0xffffffffull);
        return true;
    }
    const bool write = access == Access::Write;
    const bool fetch = access == Access::Fetch;
    const bool nxe = m_s.efer & k_efer_nxe;
    const uint64_t phys_mask = ((1ull << m_model.phys_addr_bits()) - 1) & ~0xfffull;
    uint32_t err = (write ? k_pf_write : 0) | (user ? k_pf_user : 0)
        | (fetch && (nxe || (m_s.cr4 & k_cr4_smep)) ? k_pf_fetch : 0);
    auto fault = [&](uint32_t extra) -> bool {
        m_s.cr2 = lin;
        raise(k_pf, err | extra);
    };

    bool rw = true, us = true, nx = false;
    uint64_t entry_addr[5];
    unsigned levels = 0;
    uint64_t pte = 0;
    uint64_t page_size = 4096;

    auto load = [&](uint64_t addr) -> uint64_t {
        uint64_t e = phys_read(addr, (m_s.cr4 & k_cr4_pae) ? 8 : 4);
        entry_addr[levels++] = addr;
        return e;
    };
    auto reserved_check = [&](uint64_t e, uint64_t extra_rsvd) {
        // Bits from MAXPHYADDR to 51 are reserved; 52-62 are free for software.
        uint64_t rsvd = extra_rsvd | (((1ull << 52) - 1) & ~((1ull << m_model.phys_addr_bits()) - 1));
        if (!nxe)
            rsvd |= 1ull << 63;
        if (e & rsvd)
            fault(k_pf_present | k_pf_rsvd);
    };
    auto accumulate = [&](uint64_t e) {
        rw = rw && (e & 2);
        us = us && (e & 4);
        nx = nx || (nxe && (e >> 63));
    };

    if (m_s.long_mode_active()) {
        uint64_t table = m_s.cr3 & phys_mask;
        for (int level = 4; level >= 1; level--) {
            unsigned shift = 12 + 9 * (level - 1);
            uint64_t e = load(table + ((lin >> shift) & 511) * 8);
            if (!(e & 1))
                fault(0);
            bool ps = (e & 0x80) && level <= 3;
            uint64_t extra = 0;
            if (level == 4)
                extra = 0x80; // PS reserved in PML4E
            if (level == 3 && ps && !m_model.has_pdpe1gb())
                extra = 0x80;
            if (ps && level > 1)
                extra |= ((1ull << shift) - 1) & ~0x1fffull; // reserved low address bits of a large page
            reserved_check(e, extra);
            accumulate(e);
            if (level == 1 || ps) {
                pte = e;
                page_size = 1ull << shift;
                break;
            }
            table = e & phys_mask;
        }
    } else if (m_s.cr4 & k_cr4_pae) {
        uint64_t pdpte = phys_read((m_s.cr3 & 0xffffffe0) + ((lin >> 30) & 3) * 8, 8);
        if (!(pdpte & 1))
            fault(0);
        if (pdpte & 0x1e6)
            fault(k_pf_present | k_pf_rsvd);
        uint64_t table = pdpte & phys_mask;
        for (int level = 2; level >= 1; level--) {
            unsigned shift = 12 + 9 * (level - 1);
            uint64_t e = load(table + ((lin >> shift) & 511) * 8);
            if (!(e & 1))
                fault(0);
            bool ps = (e & 0x80) && level == 2;
            reserved_check(e, ps ? 0x1fe000 : 0);
            accumulate(e);
            if (level == 1 || ps) {
                pte = e;
                page_size = 1ull << shift;
                break;
            }
            table = e & phys_mask;
        }
    } else {
        uint64_t pde = load((m_s.cr3 & 0xfffff000) + ((lin >> 22) & 0x3ff) * 4);
        if (!(pde & 1))
            fault(0);
        accumulate(pde);
        if ((pde & 0x80) && (m_s.cr4 & k_cr4_pse)) {
            pte = pde;
            page_size = 4ull << 20;
            // PSE-36: bits 13-20 hold physical address bits 32-39.
            pte = (pde & 0xffc00fffull) | (((pde >> 13) & 0xff) << 32);
        } else {
            uint64_t e = load((pde & 0xfffff000) + ((lin >> 12) & 0x3ff) * 4);
            if (!(e & 1))
                fault(0);
            accumulate(e);
            pte = e;
        }
    }

    // Permissions.
    m_last_walk_user = us;
    bool cr0_wp = m_s.cr0 & k_cr0_wp;
    if (user) {
        if (!us || (write && !rw))
            fault(k_pf_present);
    } else {
        if (write && !rw && cr0_wp)
            fault(k_pf_present);
        if (fetch && us && (m_s.cr4 & k_cr4_smep))
            fault(k_pf_present);
        if (!fetch && us && (m_s.cr4 & k_cr4_smap) && !(m_flags.get(m_s.rflags) & k_flag_ac))
            fault(k_pf_present);
    }
    if (fetch && nx)
        fault(k_pf_present);
    // A supervisor read entry may not be reused for writes when the page is
    // read-only; the TLB keeps writes separate anyway, so this only matters
    // for the caller's D-bit handling.
    writable_ok = rw || (!user && !cr0_wp);

    // Accessed bits on every level, dirty on the leaf for writes.
    unsigned entry_size = (m_s.cr4 & k_cr4_pae) || m_s.long_mode_active() ? 8 : 4;
    for (unsigned i = 0; i < levels; i++) {
        uint64_t e = phys_read(entry_addr[i], entry_size);
        uint64_t ne = e | 0x20;
        if (i == levels - 1 && write)
            ne |= 0x40;
        if (ne != e)
            phys_write(entry_addr[i], entry_size, ne);
    }

    global = (pte & 0x100) && (m_s.cr4 & k_cr4_pge);
    m_last_walk_shift = uint8_t(__builtin_ctzll(page_size));
    uint64_t frame = (page_size == 4096) ? (pte & phys_mask) : (pte & phys_mask & ~(page_size - 1));
    gpa = frame | (lin & (page_size - 1));
    return true;
}

TlbEntry& InterpreterImpl::tlb_fill(uint64_t lin, Access access, bool user)
{
    uint64_t gpa;
    bool global, writable_ok;
    page_walk(lin, access, user, gpa, global, writable_ok);
    TlbEntry& e = m_tlb[static_cast<unsigned>(access)][user][(lin >> 12) % k_tlb_entries];
    e.vpage = lin >> 12;
    // SMAP: whether a supervisor data access to a user page is allowed
    // depends on RFLAGS.AC at the time of the access (STAC/CLAC flip it
    // around every user copy), so such a translation serves this access
    // only and is not kept.
    if (!user && access != Access::Fetch && (m_s.cr4 & k_cr4_smap) && m_last_walk_user) [[unlikely]]
        e.vpage = ~0ull;
    e.gpa = gpa & ~0xfffull;
    e.global = global;
    e.page_shift = m_last_walk_shift;
    if (m_last_walk_shift != 12)
        m_tlb_large = true;
    e.host = nullptr;
    e.direct = ~0ull;
    if (const hw::RamRegion* r = m_mem.find(e.gpa); r && e.gpa + 4096 <= r->guest_base + r->size_bytes) {
        bool direct = true;
        if (access == Access::Write) {
            uint64_t page = e.gpa >> 12;
            direct = !r->read_only && !(page < m_pages && m_page_has_code[page]);
        }
        if (direct) {
            e.host = r->host + (e.gpa - r->guest_base);
            e.direct = e.vpage;
        }
    }
    return e;
}

uint8_t* InterpreterImpl::translate_fast(uint64_t lin, Access access, bool user, uint64_t& gpa)
{
    TlbEntry* e = &m_tlb[static_cast<unsigned>(access)][user][(lin >> 12) % k_tlb_entries];
    if (e->vpage != (lin >> 12)) [[unlikely]]
        e = &tlb_fill(lin, access, user);
    gpa = e->gpa | (lin & 0xfff);
    return e->host ? e->host + (lin & 0xfff) : nullptr;
}

void InterpreterImpl::flush_tlb(bool include_global)
{
    m_tlb_epoch++;
    m_block_end = true; // the rest of the block may map differently now
    for (auto& per_access : m_tlb)
        for (auto& per_user : per_access)
            for (auto& e : per_user)
                if (include_global || !e.global)
                    e.clear();
    if (include_global)
        m_tlb_large = false;
}

void InterpreterImpl::flush_tlb_page(uint64_t lin)
{
    // INVLPG: only the translations of the page holding `lin` (global ones
    // too). Entries are per 4 KiB page, so a 4 KiB translation lives in one
    // slot per table; a large page's may sit in any slot, and while any
    // large-page entry exists every slot is checked against its own page
    // size.
    m_tlb_epoch++; // the fetch page cache
    m_block_end = true;
    const uint64_t vpage = lin >> 12;
    for (auto& per_access : m_tlb)
        for (auto& per_user : per_access) {
            if (m_tlb_large) {
                for (auto& e : per_user)
                    if (e.vpage != ~0ull && ((e.vpage ^ vpage) >> (e.page_shift - 12)) == 0)
                        e.clear();
            } else if (TlbEntry& e = per_user[vpage % k_tlb_entries]; e.vpage == vpage) {
                e.clear();
            }
        }
}

// ---- Linear and segmented access ----

void InterpreterImpl::read_linear_bytes(uint64_t lin, void* dst, unsigned len, bool user)
{
    auto* out = static_cast<uint8_t*>(dst);
    while (len) {
        unsigned chunk = 4096 - unsigned(lin & 0xfff);
        if (chunk > len)
            chunk = len;
        uint64_t gpa;
        if (uint8_t* p = translate_fast(lin, Access::Read, user, gpa))
            std::memcpy(out, p, chunk);
        else
            for (unsigned i = 0; i < chunk; i++)
                out[i] = uint8_t(phys_read(gpa + i, 1));
        out += chunk;
        lin += chunk;
        len -= chunk;
        if (!m_mode64 && !m_s.long_mode_active())
            lin &= 0xffffffff;
    }
}

void InterpreterImpl::write_linear_bytes(uint64_t lin, const void* src, unsigned len, bool user)
{
    // Translate every page first so a fault leaves memory untouched.
    unsigned first_chunk = 4096 - unsigned(lin & 0xfff);
    if (first_chunk < len) {
        uint64_t gpa;
        uint64_t next = lin + first_chunk;
        if (!m_s.long_mode_active())
            next &= 0xffffffff;
        translate_fast(next, Access::Write, user, gpa);
    }
    auto* in = static_cast<const uint8_t*>(src);
    while (len) {
        unsigned chunk = 4096 - unsigned(lin & 0xfff);
        if (chunk > len)
            chunk = len;
        uint64_t gpa;
        if (uint8_t* p = translate_fast(lin, Access::Write, user, gpa)) {
            std::memcpy(p, in, chunk);
        } else {
            uint64_t v;
            for (unsigned i = 0; i < chunk; i += 8) {
                unsigned n = chunk - i < 8 ? chunk - i : 8;
                v = 0;
                std::memcpy(&v, in + i, n);
                phys_write(gpa + i, n, v);
            }
        }
        in += chunk;
        lin += chunk;
        len -= chunk;
        if (!m_s.long_mode_active())
            lin &= 0xffffffff;
    }
}

uint64_t InterpreterImpl::read_linear(uint64_t lin, unsigned size, bool supervisor)
{
    bool user = !supervisor && m_cpl == 3;
    if ((lin & 0xfff) + size <= 4096) [[likely]] {
        uint64_t gpa;
        if (uint8_t* p = translate_fast(lin, Access::Read, user, gpa)) {
            uint64_t v = 0;
            std::memcpy(&v, p, size);
            return v;
        }
        return phys_read(gpa, size);
    }
    uint64_t v = 0;
    read_linear_bytes(lin, &v, size, user);
    return v;
}

void InterpreterImpl::write_linear(uint64_t lin, unsigned size, uint64_t value, bool supervisor)
{
    bool user = !supervisor && m_cpl == 3;
    if ((lin & 0xfff) + size <= 4096) [[likely]] {
        uint64_t gpa;
        if (uint8_t* p = translate_fast(lin, Access::Write, user, gpa)) {
            std::memcpy(p, &value, size);
            return;
        }
        phys_write(gpa, size, value);
        return;
    }
    write_linear_bytes(lin, &value, size, user);
}

uint64_t InterpreterImpl::read_mem_slow(Seg seg, uint64_t offset, unsigned size)
{
    if (m_mem_hooks) [[unlikely]]
        return read_mem_hooked(seg, offset, size);
    return read_linear(linear(seg, offset, size, Access::Read), size, false);
}

void InterpreterImpl::write_mem_slow(Seg seg, uint64_t offset, unsigned size, uint64_t value)
{
    if (m_mem_hooks) [[unlikely]] {
        write_mem_hooked(seg, offset, size, value);
        return;
    }
    write_linear(linear(seg, offset, size, Access::Write), size, value, false);
}

} // namespace kiln::accel::interp
