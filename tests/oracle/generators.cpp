#include "tests/oracle/generators.h"

#include <cstdio>
#include <cstring>
#include <functional>

namespace kiln::oracle {

namespace {

constexpr uint64_t k_cf = 1, k_pf = 4, k_af = 0x10, k_zf = 0x40, k_sf = 0x80, k_of = 0x800;
constexpr uint64_t k_arith = k_cf | k_pf | k_af | k_zf | k_sf | k_of;

// What the encoder chose, for fix-up hooks.
struct Enc {
    unsigned size = 4; // operand size in bytes
    unsigned reg = 0; // ModRM.reg register (with REX.R)
    unsigned rm = 0; // ModRM.rm register if register form
    bool mem = false;
    uint64_t ea = 0; // effective address of the memory operand
    uint64_t imm = 0;
    size_t imm_pos = 0; // offset of the immediate in code
    bool rex = false; // a REX prefix was emitted (byte registers 4-7 are SPL..DIL)
    unsigned vvvv = 0; // VEX.vvvv register
};

using Fix = std::function<void(Rng&, OracleCase&, Enc&)>;

struct Form {
    std::string name;
    std::vector<uint8_t> prefix; // mandatory prefix (66/F2/F3), before REX
    std::vector<uint8_t> opcode;
    int digit = -1; // ModRM.reg fixed to /digit, or -1 for a register operand
    bool modrm = true;
    unsigned imm = 0; // immediate bytes; 0xff: 2 with 16-bit operand size, else 4
    unsigned sizes = 4; // bit 1: byte form, 2/4/8: operand sizes to try
    bool mem = true; // memory operand allowed
    bool reg_rm = true; // register operand allowed in r/m
    uint64_t undef = 0;
    Fix fix;
    bool xmm = false;
    bool reg_low = false; // ModRM.reg only RAX/RCX/RDX (never a base/index register)
    bool align16 = false; // memory operand 16-byte aligned
    // VEX encoding (C4): map 1-3, implied prefix pp (0 none, 1 66, 2 F3,
    // 3 F2); vvvv a random register, RAX..RDX only (vvvv_low, for fix-ups
    // that set its value), or unused (1111).
    uint8_t vex_map = 0;
    uint8_t vex_pp = 0;
    enum : uint8_t { VvvvAny, VvvvLow, VvvvUnused } vvvv = VvvvAny;
    bool vex_l = false;
    bool align64 = false; // XSAVE area: 64-byte aligned (mostly), 576 bytes inside the data page
};

uint64_t mask_for(unsigned size) { return size == 8 ? ~0ull : (1ull << (size * 8)) - 1; }

void random_state(Rng& rng, OracleState& st)
{
    for (auto& g : st.gpr)
        g = rng.value();
    st.rflags = 0x202 | (rng.next() & k_arith);
    for (auto& x : st.xmm) {
        x.q[0] = rng.value();
        x.q[1] = rng.value();
    }
    for (unsigned i = 0; i < k_data_bytes; i += 8) {
        uint64_t v = rng.value();
        std::memcpy(st.data + i, &v, 8);
    }
    for (unsigned i = 0; i < k_stack_bytes; i += 8) {
        uint64_t v = rng.next();
        std::memcpy(st.stack + i, &v, 8);
    }
}

// Builds one case of form `f` for code of `bits` (64, 32 or 16). 32- and
// 16-bit code: no REX, registers 0-7, operand sizes up to 32 bits; 16-bit
// code uses 16-bit addressing and 66 selects 32-bit operands.
OracleCase build(Rng& rng, const Form& f, unsigned bits)
{
    const bool mode32 = bits != 64;
    const bool mode16 = bits == 16;
    OracleCase c;
    c.name = bits == 64 ? f.name : std::to_string(bits) + ": " + f.name;
    c.mode32 = bits == 32;
    c.mode16 = mode16;
    c.undefined_flags = f.undef;
    c.compare_xmm = f.xmm;
    random_state(rng, c.in);
    Enc e;
    // Operand size.
    std::vector<unsigned> sizes;
    for (unsigned s : { 1u, 2u, 4u, 8u })
        if (f.sizes & s)
            sizes.push_back(mode32 && s == 8 ? 4 : s);
    e.size = sizes[rng.below(unsigned(sizes.size()))];
    std::vector<uint8_t>& code = c.code;
    if (e.size == (mode16 ? 4u : 2u) && !f.vex_map) // VEX: 32-bit operands, no 66
        code.push_back(0x66);
    for (uint8_t p : f.prefix)
        code.push_back(p);
    uint8_t rex = e.size == 8 ? 0x48 : 0;
    bool force_rex = e.size == 1 && rng.below(2) && !mode32;
    const unsigned nregs = mode32 ? 8 : 16;

    std::vector<uint8_t> modrm_bytes;
    if (f.modrm) {
        unsigned reg = f.digit >= 0 ? unsigned(f.digit) : f.reg_low ? rng.below(3) : rng.below(nregs);
        if (f.xmm && f.digit < 0)
            reg = rng.below(nregs);
        bool mem = f.mem && (!f.reg_rm || rng.below(2));
        e.reg = reg;
        e.mem = mem;
        if (reg & 8)
            rex |= 0x44;
        if (!mem) {
            unsigned rm = rng.below(nregs);
            e.rm = rm;
            if (rm & 8)
                rex |= 0x41;
            modrm_bytes.push_back(uint8_t(0xc0 | ((reg & 7) << 3) | (rm & 7)));
        } else if (mode16) {
            // 16-bit addressing: [BX|BP] + [SI|DI] + disp8 (DS and SS share
            // the data area here), offsets relative to the data segment.
            static const unsigned base16[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };
            static const int index16[8] = { 6, 7, 6, 7, -1, -1, -1, -1 };
            unsigned rm = rng.below(8);
            uint64_t offset = 64 + rng.below(k_data_bytes - 192);
            if (f.align16 && rng.below(4))
                offset &= ~15ull;
            int8_t disp = int8_t(rng.below(256));
            uint64_t rest = offset - int64_t(disp);
            if (index16[rm] >= 0) {
                uint64_t iv = rng.below(64);
                c.in.gpr[index16[rm]] = (rng.next() & ~0xffffull) | iv;
                rest -= iv;
            }
            c.in.gpr[base16[rm]] = (rng.next() & ~0xffffull) | (rest & 0xffff);
            e.ea = k_data_addr + offset;
            if (rm == 2 || rm == 3 || rm == 6)
                code.push_back(0x3e); // BP-based forms default to SS: use DS
            modrm_bytes.push_back(uint8_t(0x40 | ((reg & 7) << 3) | rm));
            modrm_bytes.push_back(uint8_t(disp));
        } else {
            // base + (index << scale) + disp8 pointing into the data area.
            // Never RAX/RCX/RDX/RSP: fix-ups and implicit operands change them.
            static const unsigned bases[] = { 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
            const unsigned nbases = mode32 ? 4 : 12;
            unsigned base = bases[rng.below(nbases)];
            uint64_t target = k_data_addr + 64 + rng.below(k_data_bytes - 192);
            // Mostly aligned; sometimes not, to check the #GP on m128
            // operands and that unaligned forms accept any address.
            if (f.align16 && rng.below(4))
                target &= ~15ull;
            if (f.align64)
                target = k_data_addr + 64 * (1 + rng.below(100)) + (rng.below(8) ? 0 : 8 * rng.below(8));
            int8_t disp = int8_t(rng.below(256));
            bool use_index = rng.below(3) == 0;
            unsigned index = 0, scale = 0;
            if (use_index) {
                do
                    index = bases[rng.below(nbases)];
                while (index == base);
                scale = rng.below(4);
                uint64_t iv = rng.below(32);
                c.in.gpr[index] = iv;
                c.in.gpr[base] = target - (iv << scale) - int64_t(disp);
            } else {
                c.in.gpr[base] = target - int64_t(disp);
            }
            e.ea = target;
            if (base & 8)
                rex |= 0x41;
            if (use_index && (index & 8))
                rex |= 0x42;
            if (use_index || (base & 7) == 4) {
                modrm_bytes.push_back(uint8_t(0x44 | ((reg & 7) << 3)));
                unsigned idx = use_index ? (index & 7) : 4;
                modrm_bytes.push_back(uint8_t((scale << 6) | (idx << 3) | (base & 7)));
            } else {
                modrm_bytes.push_back(uint8_t(0x40 | ((reg & 7) << 3) | (base & 7)));
            }
            modrm_bytes.push_back(uint8_t(disp));
        }
    }
    if (f.vex_map) {
        unsigned vv = f.vvvv == Form::VvvvUnused ? 0 : f.vvvv == Form::VvvvLow ? rng.below(3) : rng.below(nregs);
        e.vvvv = vv;
        unsigned w = e.size == 8, r = (rex >> 2) & 1, x = (rex >> 1) & 1, b = rex & 1;
        code.push_back(0xc4);
        code.push_back(uint8_t((!r << 7) | (!x << 6) | (!b << 5) | f.vex_map));
        code.push_back(uint8_t((w << 7) | ((~vv & 15) << 3) | (f.vex_l ? 4 : 0) | f.vex_pp));
        rex = 0;
        force_rex = false;
    }
    if (rex || force_rex)
        code.push_back(uint8_t(rex | 0x40));
    e.rex = rex || force_rex;
    for (uint8_t b : f.opcode)
        code.push_back(b);
    for (uint8_t b : modrm_bytes)
        code.push_back(b);
    unsigned imm = f.imm == 0xff ? (e.size == 2 ? 2 : 4) : f.imm;
    if (imm) {
        e.imm = rng.value() & mask_for(imm);
        e.imm_pos = code.size();
        for (unsigned i = 0; i < imm; i++)
            code.push_back(uint8_t(e.imm >> (8 * i)));
    }
    if (f.fix)
        f.fix(rng, c, e);
    return c;
}

// ---- fix-ups ----

// Shifts/rotates: the count decides which flags are defined.
Fix shift_fix(bool by_cl, bool by_one, bool rotate)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        unsigned count;
        if (by_one) {
            count = 1;
        } else if (by_cl) {
            count = rng.below(4) ? rng.below(e.size * 8 + 2) : rng.below(256);
            c.in.gpr[1] = (c.in.gpr[1] & ~0xffull) | count;
        } else {
            count = rng.below(4) ? rng.below(e.size * 8 + 2) : rng.below(256);
            c.code[e.imm_pos] = uint8_t(count);
        }
        unsigned masked = count & (e.size == 8 ? 63 : 31);
        c.undefined_flags = 0;
        if (masked == 0)
            return;
        if (masked != 1)
            c.undefined_flags |= k_of;
        if (!rotate)
            c.undefined_flags |= k_af;
    };
}

Fix double_shift_fix(bool by_cl)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        // 16-bit counts above 16 give undefined results: stay within.
        unsigned limit = e.size == 2 ? 17 : e.size * 8;
        unsigned count = rng.below(limit);
        if (by_cl)
            c.in.gpr[1] = (c.in.gpr[1] & ~0xffull) | count;
        else
            c.code[e.imm_pos] = uint8_t(count);
        unsigned masked = count & (e.size == 8 ? 63 : 31);
        c.undefined_flags = masked == 0 ? 0 : (k_af | (masked != 1 ? k_of : 0));
        if (e.size == 2 && masked > 16)
            c.undefined_flags = k_arith;
    };
}

// DIV/IDIV: keep the quotient in range most of the time; sometimes #DE.
Fix div_fix(bool is_signed)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        unsigned bits = e.size * 8;
        uint64_t m = mask_for(e.size);
        uint64_t divisor = rng.value() & m;
        if (rng.below(8) == 0)
            divisor = 0;
        if (e.mem) {
            std::memcpy(c.in.data + (e.ea - k_data_addr), &divisor, e.size);
        } else {
            // The r/m register might be RAX/RDX; set it through the state.
            uint64_t& r = c.in.gpr[e.rm];
            r = (r & ~m) | divisor;
        }
        if (rng.below(4)) {
            // High half smaller than the divisor => no overflow (unsigned).
            uint64_t hi_val = divisor ? (rng.next() % (divisor ? divisor : 1)) : 0;
            if (is_signed)
                hi_val = (rng.below(2) ? 0 : m); // sign extension of a small dividend
            if (e.size == 1) {
                c.in.gpr[0] = (c.in.gpr[0] & ~0xff00ull) | ((hi_val & 0xff) << 8);
            } else {
                c.in.gpr[2] = (c.in.gpr[2] & ~m) | (hi_val & m);
                if (e.size == 4)
                    c.in.gpr[2] = (c.in.gpr[2] & ~m) | (hi_val & m);
            }
        }
        (void)bits;
        c.undefined_flags = k_arith;
    };
}

// Values that make CMPXCHG succeed half the time.
Fix cmpxchg_fix()
{
    return [](Rng& rng, OracleCase& c, Enc& e) {
        if (!rng.below(2))
            return;
        uint64_t m = mask_for(e.size);
        uint64_t cur;
        if (e.mem) {
            cur = 0;
            std::memcpy(&cur, c.in.data + (e.ea - k_data_addr), e.size);
        } else {
            cur = c.in.gpr[e.rm];
            if (e.size == 1 && e.rm >= 4 && e.rm < 8 && !e.rex)
                cur = c.in.gpr[e.rm - 4] >> 8;
        }
        c.in.gpr[0] = (c.in.gpr[0] & ~m) | (cur & m);
    };
}

Fix bitscan_fix(bool count_form)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        // BSF/BSR leave the destination undefined for a zero source;
        // keep sources non-zero (the zero case is checked for flags by
        // LZCNT/POPCNT).
        uint64_t m = mask_for(e.size);
        uint64_t v = (rng.value() & m) | (1ull << rng.below(e.size * 8));
        if (count_form && rng.below(4) == 0)
            v = 0;
        if (e.mem)
            std::memcpy(c.in.data + (e.ea - k_data_addr), &v, e.size);
        else
            c.in.gpr[e.rm] = (c.in.gpr[e.rm] & ~m) | v;
        if (count_form)
            c.undefined_flags = k_of | k_sf | k_af | k_pf;
    };
}

// rSP inside the stack page with room both ways.
Fix stack_fix()
{
    return [](Rng& rng, OracleCase& c, Enc& e) {
        c.in.gpr[4] = k_stack_addr + 1024 + 8 * rng.below(256);
        if (e.mem && e.ea >= k_stack_addr)
            return;
    };
}

// String ops: RSI/RDI into the data area, small counts.
Fix string_fix(unsigned elem)
{
    return [=](Rng& rng, OracleCase& c, Enc&) {
        bool df = rng.below(4) == 0;
        c.in.rflags = (c.in.rflags & ~0x400ull) | (df ? 0x400 : 0);
        uint64_t count = rng.below(40);
        c.in.gpr[1] = count;
        uint64_t span = 64 * elem;
        uint64_t lo = k_data_addr + span + 8;
        uint64_t room = k_data_bytes / 2 - 2 * span - 16;
        c.in.gpr[6] = lo + rng.below(unsigned(room));
        c.in.gpr[7] = lo + k_data_bytes / 2 - span + rng.below(unsigned(room));
        // Equal areas (CMPS) or a run of RAX (SCAS) so REPE runs longer.
        uint8_t* dst = c.in.data + (c.in.gpr[7] - k_data_addr) - span;
        switch (rng.below(3)) {
        case 1:
            std::memcpy(dst, c.in.data + (c.in.gpr[6] - k_data_addr) - span, 2 * span);
            break;
        case 2:
            for (uint64_t i = 0; i < 2 * span; i += elem)
                std::memcpy(dst + i, &c.in.gpr[0], elem);
            break;
        default:
            break;
        }
    };
}

// MMX cases: random TOP, tags and exponent bits, so the x87 -> MMX
// transition each MMX instruction makes is compared too.
void random_mmx_state(Rng& rng, OracleCase& c)
{
    c.compare_x87 = true;
    c.in.fsw = uint16_t(rng.below(8) << 11);
    c.in.ftw = uint8_t(rng.next());
    for (auto& st : c.in.st) {
        st = {};
        st.q[0] = rng.value();
        st.w[4] = uint16_t(rng.below(2) ? 0xffff : rng.next());
    }
}

// BEXTR / BZHI / SHLX...: the control register (vvvv) with starts,
// lengths and counts around the operand size.
Fix vvvv_control_fix(bool two_fields)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        uint64_t start = rng.below(4) ? rng.below(e.size * 8 + 2) : rng.below(256);
        uint64_t len = rng.below(4) ? rng.below(e.size * 8 + 2) : rng.below(256);
        uint64_t v = (rng.next() & ~0xffffull) | (two_fields ? (len << 8) : (rng.next() & 0xff00)) | start;
        c.in.gpr[e.vvvv] = v;
    };
}

// An absolute-address store of zero (`size` 2 or 4), to hide bytes the
// host writes differently for a reason the oracle cannot share.
void store_zero_abs(OracleCase& c, uint64_t addr, unsigned size)
{
    std::vector<uint8_t>& code = c.code;
    if (size == 2)
        code.push_back(0x66);
    code.push_back(0xc7);
    if (c.mode32) {
        code.push_back(0x05);
    } else {
        code.push_back(0x04);
        code.push_back(0x25);
    }
    for (unsigned i = 0; i < 4; i++)
        code.push_back(uint8_t(addr >> (8 * i)));
    for (unsigned i = 0; i < size; i++)
        code.push_back(0);
}

// XSAVE family: RFBM (EDX:EAX) within x87|SSE (the host's XCR0 has more),
// x87 and SSE state not in their init state (the interpreter reports both
// in use; the host tracks XINUSE). Saves: FOP/FIP/FDP and MXCSR_MASK are
// zeroed afterwards (the host's last x87 instruction and its MXCSR_MASK are
// its own). Restores: a valid header and MXCSR mostly, invalid sometimes.
Fix xsave_fix(bool restore, bool compacted_ok)
{
    return [=](Rng& rng, OracleCase& c, Enc& e) {
        c.compare_x87 = true;
        c.compare_xmm = true;
        c.in.gpr[0] = (rng.next() & ~0xffffffffull) | rng.below(4);
        c.in.gpr[2] = rng.next() & ~0xffffffffull;
        c.in.ftw = uint8_t(rng.next() | 1);
        for (auto& st : c.in.st) {
            st.q[0] = rng.value();
            st.w[4] = uint16_t(rng.next());
        }
        if (!restore) {
            store_zero_abs(c, e.ea + 6, 2);
            for (unsigned off : { 8u, 12u, 16u, 20u, 28u })
                store_zero_abs(c, e.ea + off, 4);
            return;
        }
        uint8_t* area = c.in.data + (e.ea - k_data_addr);
        uint16_t fcw = uint16_t(0x7f | (rng.below(4) << 8) | (rng.below(4) << 10));
        std::memcpy(area, &fcw, 2);
        uint32_t mxcsr = 0x1f80 ^ uint32_t(rng.next() & 0xe03f);
        if (rng.below(10) == 0)
            mxcsr |= 1u << 20; // reserved: #GP
        std::memcpy(area + 24, &mxcsr, 4);
        uint64_t xstate_bv = rng.below(4), xcomp_bv = 0;
        if (compacted_ok && rng.below(3) == 0)
            xcomp_bv = (1ull << 63) | xstate_bv | rng.below(4);
        std::memset(area + 512, 0, 64);
        switch (rng.below(16)) {
        case 0:
            xstate_bv |= 1ull << 62; // not in XCR0: #GP
            break;
        case 1:
            area[512 + 16 + rng.below(48)] = uint8_t(1 + rng.below(255)); // reserved header bytes: #GP
            break;
        case 2:
            if (!xcomp_bv)
                xcomp_bv = 1; // XCOMP_BV without bit 63: #GP
            break;
        default:
            break;
        }
        std::memcpy(area + 512, &xstate_bv, 8);
        std::memcpy(area + 520, &xcomp_bv, 8);
    };
}

void xsave_forms(std::vector<Form>& v)
{
    auto form = [&](const char* name, std::vector<uint8_t> op, int digit, bool restore) {
        Form f { name, {}, std::move(op), digit, true, 0, 4 | 8, true, false };
        f.align64 = true;
        f.fix = xsave_fix(restore, true);
        return f;
    };
    v.push_back(form("xsave", { 0x0f, 0xae }, 4, false));
    v.push_back(form("xsaveopt", { 0x0f, 0xae }, 6, false));
    v.push_back(form("xsavec", { 0x0f, 0xc7 }, 4, false));
    v.push_back(form("xrstor", { 0x0f, 0xae }, 5, true));
}

// VEX forms of BMI1/BMI2: name, map, pp, opcode, digit, imm, undefined flags.
void bmi_forms(std::vector<Form>& v)
{
    auto vex = [&](const char* name, uint8_t map, uint8_t pp, uint8_t op, int digit, unsigned imm, uint64_t undef) {
        Form f { name, {}, { op }, digit, true, imm, 4 | 8, true, true, undef };
        f.vex_map = map;
        f.vex_pp = pp;
        return f;
    };
    v.push_back(vex("andn", 2, 0, 0xf2, -1, 0, k_af | k_pf));
    Form bextr = vex("bextr", 2, 0, 0xf7, -1, 0, k_af | k_sf | k_pf);
    bextr.vvvv = Form::VvvvLow;
    bextr.fix = vvvv_control_fix(true);
    v.push_back(bextr);
    v.push_back(vex("blsr", 2, 0, 0xf3, 1, 0, k_af | k_pf));
    v.push_back(vex("blsmsk", 2, 0, 0xf3, 2, 0, k_af | k_pf));
    v.push_back(vex("blsi", 2, 0, 0xf3, 3, 0, k_af | k_pf));
    Form bzhi = vex("bzhi", 2, 0, 0xf5, -1, 0, k_af | k_pf);
    bzhi.vvvv = Form::VvvvLow;
    bzhi.fix = vvvv_control_fix(false);
    v.push_back(bzhi);
    v.push_back(vex("pdep", 2, 3, 0xf5, -1, 0, 0));
    v.push_back(vex("pext", 2, 2, 0xf5, -1, 0, 0));
    v.push_back(vex("mulx", 2, 3, 0xf6, -1, 0, 0));
    Form rorx = vex("rorx", 3, 3, 0xf0, -1, 1, 0);
    rorx.vvvv = Form::VvvvUnused;
    v.push_back(rorx);
    for (auto [name, pp] : { std::pair { "shlx", 1 }, { "sarx", 2 }, { "shrx", 3 } }) {
        Form f = vex(name, 2, uint8_t(pp), 0xf7, -1, 0, 0);
        f.vvvv = Form::VvvvLow;
        f.fix = vvvv_control_fix(false);
        v.push_back(f);
    }
    // #UD: VEX.L=1, vvvv used by RORX, 66 before VEX, group 17 /0, BZHI with pp.
    // (AVX opcodes are #UD in Kiln but run natively: see interp_system_test.)
    Form l1 = vex("andn L=1 (#UD)", 2, 0, 0xf2, -1, 0, 0);
    l1.vex_l = true;
    v.push_back(l1);
    v.push_back(vex("rorx vvvv!=1111 (#UD)", 3, 3, 0xf0, -1, 1, 0));
    Form p66 = vex("66 andn (#UD)", 2, 0, 0xf2, -1, 0, 0);
    p66.prefix = { 0x66 };
    v.push_back(p66);
    v.push_back(vex("blsr /0 (#UD)", 2, 0, 0xf3, 0, 0, 0));
    v.push_back(vex("bzhi pp=66 (#UD)", 2, 1, 0xf5, -1, 0, 0));
    // Legacy-encoded: MOVBE (memory only), ADCX/ADOX, TZCNT.
    v.push_back({ "movbe r,m", {}, { 0x0f, 0x38, 0xf0 }, -1, true, 0, 2 | 4 | 8, true, false });
    v.push_back({ "movbe m,r", {}, { 0x0f, 0x38, 0xf1 }, -1, true, 0, 2 | 4 | 8, true, false });
    v.push_back({ "movbe r,r (#UD)", {}, { 0x0f, 0x38, 0xf0 }, -1, true, 0, 4, false, true });
    v.push_back({ "adcx", { 0x66 }, { 0x0f, 0x38, 0xf6 }, -1, true, 0, 4 | 8 });
    v.push_back({ "adox", { 0xf3 }, { 0x0f, 0x38, 0xf6 }, -1, true, 0, 4 | 8 });
    v.push_back({ "tzcnt r,r/m", { 0xf3 }, { 0x0f, 0xbc }, -1, true, 0, 2 | 4 | 8, true, true, 0, bitscan_fix(true) });
}

std::vector<Form> family_forms(const std::string& fam)
{
    std::vector<Form> v;
    if (fam == "bmi")
        bmi_forms(v);
    if (fam == "xsave")
        xsave_forms(v);
    static const char* alu_names[8] = { "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp" };
    if (fam == "alu") {
        for (unsigned a = 0; a < 8; a++) {
            uint8_t b = uint8_t(a * 8);
            std::string n = alu_names[a];
            v.push_back({ n + " r/m8,r8", {}, { b }, -1, true, 0, 1 });
            v.push_back({ n + " r/m,r", {}, { uint8_t(b + 1) }, -1, true, 0, 2 | 4 | 8 });
            v.push_back({ n + " r8,r/m8", {}, { uint8_t(b + 2) }, -1, true, 0, 1 });
            v.push_back({ n + " r,r/m", {}, { uint8_t(b + 3) }, -1, true, 0, 2 | 4 | 8 });
            v.push_back({ n + " al,imm8", {}, { uint8_t(b + 4) }, -1, false, 1, 1 });
            v.push_back({ n + " eax,imm", {}, { uint8_t(b + 5) }, -1, false, 0xff, 2 | 4 | 8 });
            v.push_back({ n + " r/m8,imm8", {}, { 0x80 }, int(a), true, 1, 1 });
            v.push_back({ n + " r/m,imm", {}, { 0x81 }, int(a), true, 0xff, 2 | 4 | 8 });
            v.push_back({ n + " r/m,imm8", {}, { 0x83 }, int(a), true, 1, 2 | 4 | 8 });
            v.push_back({ "lock " + n + " m,r", { 0xf0 }, { uint8_t(b + 1) }, -1, true, 0, 2 | 4 | 8, true, false });
        }
        v.pop_back(); // no LOCK CMP
        v.push_back({ "test r/m8,r8", {}, { 0x84 }, -1, true, 0, 1, true, true, k_af });
        v.push_back({ "test r/m,r", {}, { 0x85 }, -1, true, 0, 2 | 4 | 8, true, true, k_af });
        v.push_back({ "test al,imm8", {}, { 0xa8 }, -1, false, 1, 1, true, true, k_af });
        v.push_back({ "test eax,imm", {}, { 0xa9 }, -1, false, 0xff, 2 | 4 | 8, true, true, k_af });
        v.push_back({ "test r/m8,imm8", {}, { 0xf6 }, 0, true, 1, 1, true, true, k_af });
        v.push_back({ "test r/m,imm", {}, { 0xf7 }, 0, true, 0xff, 2 | 4 | 8, true, true, k_af });
        for (unsigned a = 0; a < 8; a++) // the logic ops leave AF undefined
            if (a == 1 || a == 4 || a == 6)
                for (auto& f : v)
                    if (f.name.rfind(alu_names[a], 0) == 0 || f.name.rfind(std::string("lock ") + alu_names[a], 0) == 0)
                        f.undef = k_af;
        v.push_back({ "inc r/m8", {}, { 0xfe }, 0, true, 0, 1 });
        v.push_back({ "dec r/m8", {}, { 0xfe }, 1, true, 0, 1 });
        v.push_back({ "inc r/m", {}, { 0xff }, 0, true, 0, 2 | 4 | 8 });
        v.push_back({ "dec r/m", {}, { 0xff }, 1, true, 0, 2 | 4 | 8 });
        v.push_back({ "not r/m8", {}, { 0xf6 }, 2, true, 0, 1 });
        v.push_back({ "not r/m", {}, { 0xf7 }, 2, true, 0, 2 | 4 | 8 });
        v.push_back({ "neg r/m8", {}, { 0xf6 }, 3, true, 0, 1 });
        v.push_back({ "neg r/m", {}, { 0xf7 }, 3, true, 0, 2 | 4 | 8 });
        v.push_back({ "lock inc m", { 0xf0 }, { 0xff }, 0, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "lock neg m", { 0xf0 }, { 0xf7 }, 3, true, 0, 2 | 4 | 8, true, false });
    } else if (fam == "muldiv") {
        uint64_t mul_undef = k_sf | k_zf | k_af | k_pf;
        v.push_back({ "mul r/m8", {}, { 0xf6 }, 4, true, 0, 1, true, true, mul_undef });
        v.push_back({ "mul r/m", {}, { 0xf7 }, 4, true, 0, 2 | 4 | 8, true, true, mul_undef });
        v.push_back({ "imul r/m8", {}, { 0xf6 }, 5, true, 0, 1, true, true, mul_undef });
        v.push_back({ "imul r/m", {}, { 0xf7 }, 5, true, 0, 2 | 4 | 8, true, true, mul_undef });
        v.push_back({ "imul r,r/m", {}, { 0x0f, 0xaf }, -1, true, 0, 2 | 4 | 8, true, true, mul_undef });
        v.push_back({ "imul r,r/m,imm8", {}, { 0x6b }, -1, true, 1, 2 | 4 | 8, true, true, mul_undef });
        v.push_back({ "imul r,r/m,imm", {}, { 0x69 }, -1, true, 0xff, 2 | 4 | 8, true, true, mul_undef });
        v.push_back({ "div r/m8", {}, { 0xf6 }, 6, true, 0, 1, true, true, k_arith, div_fix(false) });
        v.push_back({ "div r/m", {}, { 0xf7 }, 6, true, 0, 2 | 4 | 8, true, true, k_arith, div_fix(false) });
        v.push_back({ "idiv r/m8", {}, { 0xf6 }, 7, true, 0, 1, true, true, k_arith, div_fix(true) });
        v.push_back({ "idiv r/m", {}, { 0xf7 }, 7, true, 0, 2 | 4 | 8, true, true, k_arith, div_fix(true) });
    } else if (fam == "shift") {
        static const char* sh[8] = { "rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar" };
        for (unsigned d = 0; d < 8; d++) {
            bool rot = d < 4;
            std::string n = sh[d];
            v.push_back(
                { n + " r/m8,1", {}, { 0xd0 }, int(d), true, 0, 1, true, true, 0, shift_fix(false, true, rot) });
            v.push_back(
                { n + " r/m,1", {}, { 0xd1 }, int(d), true, 0, 2 | 4 | 8, true, true, 0, shift_fix(false, true, rot) });
            v.push_back(
                { n + " r/m8,cl", {}, { 0xd2 }, int(d), true, 0, 1, true, true, 0, shift_fix(true, false, rot) });
            v.push_back({ n + " r/m,cl", {}, { 0xd3 }, int(d), true, 0, 2 | 4 | 8, true, true, 0,
                shift_fix(true, false, rot) });
            v.push_back(
                { n + " r/m8,imm8", {}, { 0xc0 }, int(d), true, 1, 1, true, true, 0, shift_fix(false, false, rot) });
            v.push_back({ n + " r/m,imm8", {}, { 0xc1 }, int(d), true, 1, 2 | 4 | 8, true, true, 0,
                shift_fix(false, false, rot) });
        }
        v.push_back(
            { "shld r/m,r,imm8", {}, { 0x0f, 0xa4 }, -1, true, 1, 2 | 4 | 8, true, true, 0, double_shift_fix(false) });
        v.push_back(
            { "shld r/m,r,cl", {}, { 0x0f, 0xa5 }, -1, true, 0, 2 | 4 | 8, true, true, 0, double_shift_fix(true) });
        v.push_back(
            { "shrd r/m,r,imm8", {}, { 0x0f, 0xac }, -1, true, 1, 2 | 4 | 8, true, true, 0, double_shift_fix(false) });
        v.push_back(
            { "shrd r/m,r,cl", {}, { 0x0f, 0xad }, -1, true, 0, 2 | 4 | 8, true, true, 0, double_shift_fix(true) });
    } else if (fam == "bits") {
        uint64_t bt_undef = k_of | k_sf | k_af | k_pf;
        v.push_back({ "bt r/m,r", {}, { 0x0f, 0xa3 }, -1, true, 0, 2 | 4 | 8, true, true, bt_undef });
        v.push_back({ "bts r/m,r", {}, { 0x0f, 0xab }, -1, true, 0, 2 | 4 | 8, true, true, bt_undef });
        v.push_back({ "btr r/m,r", {}, { 0x0f, 0xb3 }, -1, true, 0, 2 | 4 | 8, true, true, bt_undef });
        v.push_back({ "btc r/m,r", {}, { 0x0f, 0xbb }, -1, true, 0, 2 | 4 | 8, true, true, bt_undef });
        for (int d = 4; d < 8; d++)
            v.push_back({ "bt* r/m,imm8 /" + std::to_string(d), {}, { 0x0f, 0xba }, d, true, 1, 2 | 4 | 8, true, true,
                bt_undef });
        v.push_back({ "lock bts m,r", { 0xf0 }, { 0x0f, 0xab }, -1, true, 0, 2 | 4 | 8, true, false, bt_undef });
        // Register bit offsets address memory outside the operand: keep them
        // within the data area (+-512 bits around the operand).
        for (auto& f : v)
            if (f.digit < 0) {
                f.reg_low = true;
                f.fix = [](Rng& rng, OracleCase& c, Enc& e) {
                    if (e.mem)
                        c.in.gpr[e.reg] = uint64_t(int64_t(rng.below(1024)) - 512);
                };
            }
        uint64_t bs_undef = k_cf | k_of | k_sf | k_af | k_pf;
        v.push_back(
            { "bsf r,r/m", {}, { 0x0f, 0xbc }, -1, true, 0, 2 | 4 | 8, true, true, bs_undef, bitscan_fix(false) });
        v.push_back(
            { "bsr r,r/m", {}, { 0x0f, 0xbd }, -1, true, 0, 2 | 4 | 8, true, true, bs_undef, bitscan_fix(false) });
        v.push_back(
            { "lzcnt r,r/m", { 0xf3 }, { 0x0f, 0xbd }, -1, true, 0, 2 | 4 | 8, true, true, 0, bitscan_fix(true) });
        v.push_back(
            { "popcnt r,r/m", { 0xf3 }, { 0x0f, 0xb8 }, -1, true, 0, 2 | 4 | 8, true, true, 0, bitscan_fix(true) });
        for (uint8_t r = 0; r < 8; r++)
            v.push_back(
                { "bswap r" + std::to_string(r), {}, { uint8_t(0x0f), uint8_t(0xc8 + r) }, -1, false, 0, 4 | 8 });
    } else if (fam == "move") {
        v.push_back({ "mov r/m8,r8", {}, { 0x88 }, -1, true, 0, 1 });
        v.push_back({ "mov r/m,r", {}, { 0x89 }, -1, true, 0, 2 | 4 | 8 });
        v.push_back({ "mov r8,r/m8", {}, { 0x8a }, -1, true, 0, 1 });
        v.push_back({ "mov r,r/m", {}, { 0x8b }, -1, true, 0, 2 | 4 | 8 });
        v.push_back({ "mov r/m8,imm8", {}, { 0xc6 }, 0, true, 1, 1 });
        v.push_back({ "mov r/m,imm", {}, { 0xc7 }, 0, true, 0xff, 2 | 4 | 8 });
        for (uint8_t r = 0; r < 8; r++) {
            v.push_back({ "mov r8,imm8 " + std::to_string(r), {}, { uint8_t(0xb0 + r) }, -1, false, 1, 1 });
            v.push_back({ "mov r,imm " + std::to_string(r), {}, { uint8_t(0xb8 + r) }, -1, false, 4, 2 | 4 });
            v.push_back({ "movabs r,imm64 " + std::to_string(r), {}, { uint8_t(0xb8 + r) }, -1, false, 8, 8 });
        }
        for (auto& f : v)
            if (f.name.rfind("mov r,imm ", 0) == 0)
                f.fix = [](Rng& rng, OracleCase& c, Enc& e) {
                    if (e.size == 2)
                        c.code.resize(c.code.size() - 2);
                };
        v.push_back({ "lea r,m", {}, { 0x8d }, -1, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "lea r,m (addr32)", { 0x67 }, { 0x8d }, -1, true, 0, 4 | 8, true, false });
        v.push_back({ "movzx r,r/m8", {}, { 0x0f, 0xb6 }, -1, true, 0, 2 | 4 | 8 });
        v.push_back({ "movzx r,r/m16", {}, { 0x0f, 0xb7 }, -1, true, 0, 4 | 8 });
        v.push_back({ "movsx r,r/m8", {}, { 0x0f, 0xbe }, -1, true, 0, 2 | 4 | 8 });
        v.push_back({ "movsx r,r/m16", {}, { 0x0f, 0xbf }, -1, true, 0, 4 | 8 });
        v.push_back({ "movsxd r,r/m32", {}, { 0x63 }, -1, true, 0, 4 | 8 });
        v.push_back({ "cbw/cwde/cdqe", {}, { 0x98 }, -1, false, 0, 2 | 4 | 8 });
        v.push_back({ "cwd/cdq/cqo", {}, { 0x99 }, -1, false, 0, 2 | 4 | 8 });
        v.push_back({ "xchg r/m8,r8", {}, { 0x86 }, -1, true, 0, 1 });
        v.push_back({ "xchg r/m,r", {}, { 0x87 }, -1, true, 0, 2 | 4 | 8 });
        for (uint8_t r = 1; r < 8; r++)
            v.push_back({ "xchg eax,r" + std::to_string(r), {}, { uint8_t(0x90 + r) }, -1, false, 0, 2 | 4 | 8 });
        v.push_back({ "xadd r/m8,r8", {}, { 0x0f, 0xc0 }, -1, true, 0, 1 });
        v.push_back({ "xadd r/m,r", {}, { 0x0f, 0xc1 }, -1, true, 0, 2 | 4 | 8 });
        v.push_back({ "lock xadd m,r", { 0xf0 }, { 0x0f, 0xc1 }, -1, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "cmpxchg r/m8,r8", {}, { 0x0f, 0xb0 }, -1, true, 0, 1, true, true, 0, cmpxchg_fix() });
        v.push_back({ "cmpxchg r/m,r", {}, { 0x0f, 0xb1 }, -1, true, 0, 2 | 4 | 8, true, true, 0, cmpxchg_fix() });
        v.push_back(
            { "lock cmpxchg m,r", { 0xf0 }, { 0x0f, 0xb1 }, -1, true, 0, 4 | 8, true, false, 0, cmpxchg_fix() });
        v.push_back({ "cmpxchg8b m", {}, { 0x0f, 0xc7 }, 1, true, 0, 4, true, false });
        for (unsigned cc = 0; cc < 16; cc++) {
            v.push_back({ "cmovcc " + std::to_string(cc), {}, { 0x0f, uint8_t(0x40 + cc) }, -1, true, 0, 2 | 4 | 8 });
            v.push_back({ "setcc " + std::to_string(cc), {}, { 0x0f, uint8_t(0x90 + cc) }, 0, true, 0, 1 });
        }
        v.push_back({ "lahf", {}, { 0x9f }, -1, false, 0, 4 });
        v.push_back({ "sahf", {}, { 0x9e }, -1, false, 0, 4 });
        v.push_back({ "clc", {}, { 0xf8 }, -1, false, 0, 4 });
        v.push_back({ "stc", {}, { 0xf9 }, -1, false, 0, 4 });
        v.push_back({ "cmc", {}, { 0xf5 }, -1, false, 0, 4 });
        v.push_back({ "nop r/m", {}, { 0x0f, 0x1f }, 0, true, 0, 2 | 4 });
        v.push_back({ "xlat", {}, { 0xd7 }, -1, false, 0, 4, true, true, 0,
            [](Rng& rng, OracleCase& c, Enc&) { c.in.gpr[3] = k_data_addr + rng.below(4096); } });
    } else if (fam == "stack") {
        for (uint8_t r = 0; r < 8; r++) {
            v.push_back({ "push r" + std::to_string(r), {}, { uint8_t(0x50 + r) }, -1, false, 0, 2 | 8, true, true, 0,
                stack_fix() });
            v.push_back({ "pop r" + std::to_string(r), {}, { uint8_t(0x58 + r) }, -1, false, 0, 2 | 8, true, true, 0,
                stack_fix() });
        }
        v.push_back({ "push imm8", {}, { 0x6a }, -1, false, 1, 8, true, true, 0, stack_fix() });
        v.push_back({ "push imm32", {}, { 0x68 }, -1, false, 4, 8, true, true, 0, stack_fix() });
        v.push_back({ "push r/m", {}, { 0xff }, 6, true, 0, 8, true, true, 0, stack_fix() });
        v.push_back({ "pop r/m", {}, { 0x8f }, 0, true, 0, 8, true, true, 0, stack_fix() });
        v.push_back({ "pushf", {}, { 0x9c }, -1, false, 0, 8, true, true, 0, stack_fix() });
        v.push_back({ "popf", {}, { 0x9d }, -1, false, 0, 8, true, true, 0, [](Rng& rng, OracleCase& c, Enc& e) {
                         stack_fix()(rng, c, e);
                         // No TF (it would trap) and no AC (alignment checks).
                         uint64_t v = (rng.next() & 0xcd5) | 0x202;
                         std::memcpy(c.in.stack + (c.in.gpr[4] - k_stack_addr), &v, 8);
                     } });
        v.push_back({ "call rel32 / pop", {}, { 0xe8, 0, 0, 0, 0 }, -1, false, 0, 8, true, true, 0, stack_fix() });
        v.push_back({ "enter imm16,0", {}, { 0xc8 }, -1, false, 0, 8, true, true, 0, [](Rng& rng, OracleCase& c, Enc&) {
                         c.in.gpr[4] = k_stack_addr + 2048 + 8 * rng.below(128);
                         uint16_t alloc = uint16_t(rng.below(512));
                         c.code.push_back(uint8_t(alloc));
                         c.code.push_back(uint8_t(alloc >> 8));
                         c.code.push_back(uint8_t(rng.below(2) ? 0 : 1 + rng.below(4)));
                         c.in.gpr[5] = k_stack_addr + 2048 + 8 * rng.below(200);
                     } });
        v.push_back({ "leave", {}, { 0xc9 }, -1, false, 0, 8, true, true, 0,
            [](Rng& rng, OracleCase& c, Enc&) { c.in.gpr[5] = k_stack_addr + 1024 + 8 * rng.below(256); } });
    } else if (fam == "branch") {
        for (unsigned cc = 0; cc < 16; cc++) {
            // jcc +2 over "mov al, 0x55"; then the end.
            v.push_back(
                { "jcc rel8 " + std::to_string(cc), {}, { uint8_t(0x70 + cc), 2, 0xb0, 0x55 }, -1, false, 0, 4 });
            v.push_back({ "jcc rel32 " + std::to_string(cc), {}, { 0x0f, uint8_t(0x80 + cc), 2, 0, 0, 0, 0xb0, 0x55 },
                -1, false, 0, 4 });
        }
        auto loop_fix
            = [](Rng& rng, OracleCase& c, Enc&) { c.in.gpr[1] = rng.below(3) == 0 ? rng.below(3) : rng.value(); };
        v.push_back({ "loop", {}, { 0xe2, 2, 0xb0, 0x55 }, -1, false, 0, 4, true, true, 0, loop_fix });
        v.push_back({ "loope", {}, { 0xe1, 2, 0xb0, 0x55 }, -1, false, 0, 4, true, true, 0, loop_fix });
        v.push_back({ "loopne", {}, { 0xe0, 2, 0xb0, 0x55 }, -1, false, 0, 4, true, true, 0, loop_fix });
        v.push_back({ "jrcxz", {}, { 0xe3, 2, 0xb0, 0x55 }, -1, false, 0, 4, true, true, 0, loop_fix });
        v.push_back({ "jecxz", { 0x67 }, { 0xe3, 2, 0xb0, 0x55 }, -1, false, 0, 4, true, true, 0, loop_fix });
        // call +2 ; (skipped: mov al,0x55) ; pop rcx  -- rcx gets the return address.
        v.push_back(
            { "call rel32", {}, { 0xe8, 2, 0, 0, 0, 0xb0, 0x55, 0x59 }, -1, false, 0, 4, true, true, 0, stack_fix() });
        // lea rax,[rip+3]; jmp rax; (skipped); nop
        v.push_back({ "jmp r/m", {}, { 0x48, 0x8d, 0x05, 4, 0, 0, 0, 0xff, 0xe0, 0xb0, 0x55, 0x90 }, -1, false, 0, 4 });
        // push target; ret
        v.push_back({ "ret", {}, { 0x48, 0x8d, 0x05, 4, 0, 0, 0, 0x50, 0xc3, 0xb0, 0x55, 0x90 }, -1, false, 0, 4, true,
            true, 0, stack_fix() });
        v.push_back({ "ret imm16", {}, { 0x48, 0x8d, 0x05, 6, 0, 0, 0, 0x50, 0xc2, 0x10, 0x00, 0xb0, 0x55, 0x90 }, -1,
            false, 0, 4, true, true, 0, stack_fix() });
    } else if (fam == "sse-int") {
        static const uint8_t ops[] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c,
            0x6d, 0x74, 0x75, 0x76, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0,
            0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5,
            0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe };
        char name[32];
        for (uint8_t o : ops) {
            snprintf(name, sizeof name, "66 0f %02x", o);
            v.push_back({ name, { 0x66 }, { 0x0f, o }, -1, true, 0, 4 });
        }
        for (uint8_t o : { 0x71, 0x72, 0x73 })
            for (int dg : { 2, 4, 6, 3, 7 }) {
                if ((o == 0x73 && dg == 4) || (o != 0x73 && (dg == 3 || dg == 7)))
                    continue;
                snprintf(name, sizeof name, "66 0f %02x /%d ib", o, dg);
                v.push_back({ name, { 0x66 }, { 0x0f, o }, dg, true, 1, 4, false });
            }
        v.push_back({ "movd/movq xmm,r/m", { 0x66 }, { 0x0f, 0x6e }, -1, true, 0, 4 | 8 });
        v.push_back({ "movd/movq r/m,xmm", { 0x66 }, { 0x0f, 0x7e }, -1, true, 0, 4 | 8 });
        v.push_back({ "movq xmm,xmm/m64", { 0xf3 }, { 0x0f, 0x7e }, -1, true, 0, 4 });
        v.push_back({ "movq xmm/m64,xmm", { 0x66 }, { 0x0f, 0xd6 }, -1, true, 0, 4 });
        v.push_back({ "movdqa xmm,m", { 0x66 }, { 0x0f, 0x6f }, -1, true, 0, 4 });
        v.push_back({ "movdqu xmm,m", { 0xf3 }, { 0x0f, 0x6f }, -1, true, 0, 4 });
        v.push_back({ "movdqa m,xmm", { 0x66 }, { 0x0f, 0x7f }, -1, true, 0, 4 });
        v.push_back({ "movdqu m,xmm", { 0xf3 }, { 0x0f, 0x7f }, -1, true, 0, 4 });
        v.push_back({ "pshufd", { 0x66 }, { 0x0f, 0x70 }, -1, true, 1, 4 });
        v.push_back({ "pshufhw", { 0xf3 }, { 0x0f, 0x70 }, -1, true, 1, 4 });
        v.push_back({ "pshuflw", { 0xf2 }, { 0x0f, 0x70 }, -1, true, 1, 4 });
        v.push_back({ "pinsrw", { 0x66 }, { 0x0f, 0xc4 }, -1, true, 1, 4 });
        v.push_back({ "pextrw", { 0x66 }, { 0x0f, 0xc5 }, -1, true, 1, 4, false });
        v.push_back({ "pmovmskb", { 0x66 }, { 0x0f, 0xd7 }, -1, true, 0, 4, false });
        for (auto& f : v) {
            f.xmm = true;
            f.align16 = true;
        }
    } else if (fam == "mmx") {
        // MMX forms (no prefix) and the MMX<->XMM conversions; the x87
        // state starts random (TOP, tags, exponents) to check the
        // transition every MMX instruction makes.
        static const uint8_t ops[] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x74,
            0x75, 0x76, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2,
            0xe3, 0xe4, 0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf8,
            0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe };
        char name[32];
        for (uint8_t o : ops) {
            snprintf(name, sizeof name, "0f %02x mm", o);
            v.push_back({ name, {}, { 0x0f, o }, -1, true, 0, 4 });
        }
        for (uint8_t o : { 0x71, 0x72, 0x73 })
            for (int dg : { 2, 4, 6 }) {
                if (o == 0x73 && dg == 4)
                    continue;
                snprintf(name, sizeof name, "0f %02x /%d ib mm", o, dg);
                v.push_back({ name, {}, { 0x0f, o }, dg, true, 1, 4, false });
            }
        v.push_back({ "movd/movq mm,r/m", {}, { 0x0f, 0x6e }, -1, true, 0, 4 | 8 });
        v.push_back({ "movd/movq r/m,mm", {}, { 0x0f, 0x7e }, -1, true, 0, 4 | 8 });
        v.push_back({ "movq mm,mm/m64", {}, { 0x0f, 0x6f }, -1, true, 0, 4 });
        v.push_back({ "movq mm/m64,mm", {}, { 0x0f, 0x7f }, -1, true, 0, 4 });
        v.push_back({ "movntq", {}, { 0x0f, 0xe7 }, -1, true, 0, 4, true, false });
        v.push_back({ "pshufw", {}, { 0x0f, 0x70 }, -1, true, 1, 4 });
        v.push_back({ "pinsrw mm", {}, { 0x0f, 0xc4 }, -1, true, 1, 4 });
        v.push_back({ "pextrw mm", {}, { 0x0f, 0xc5 }, -1, true, 1, 4, false });
        v.push_back({ "pmovmskb mm", {}, { 0x0f, 0xd7 }, -1, true, 0, 4, false });
        v.push_back({ "maskmovq", {}, { 0x0f, 0xf7 }, -1, true, 0, 4, false, true, 0,
            [](Rng& rng, OracleCase& c, Enc&) { c.in.gpr[7] = k_data_addr + 64 + rng.below(k_data_bytes - 128); } });
        v.push_back({ "emms", {}, { 0x0f, 0x77 }, -1, false, 0, 4 });
        v.push_back({ "cvtpi2ps", {}, { 0x0f, 0x2a }, -1, true, 0, 4 });
        v.push_back({ "cvtpi2pd", { 0x66 }, { 0x0f, 0x2a }, -1, true, 0, 4 });
        v.push_back({ "cvttps2pi", {}, { 0x0f, 0x2c }, -1, true, 0, 4 });
        v.push_back({ "cvtps2pi", {}, { 0x0f, 0x2d }, -1, true, 0, 4 });
        v.push_back({ "cvttpd2pi", { 0x66 }, { 0x0f, 0x2c }, -1, true, 0, 4 });
        v.push_back({ "cvtpd2pi", { 0x66 }, { 0x0f, 0x2d }, -1, true, 0, 4 });
        v.push_back({ "movq2dq", { 0xf3 }, { 0x0f, 0xd6 }, -1, true, 0, 4, false });
        v.push_back({ "movdq2q", { 0xf2 }, { 0x0f, 0xd6 }, -1, true, 0, 4, false });
        for (auto& f : v) {
            f.xmm = true;
            f.align16 = true;
            Fix extra = f.fix;
            const bool cvt = f.name.rfind("cvt", 0) == 0;
            f.fix = [extra, cvt](Rng& rng, OracleCase& c, Enc& e) {
                if (extra)
                    extra(rng, c, e);
                random_mmx_state(rng, c);
                if (!cvt)
                    return;
                // Conversions: floats, doubles and int32 pairs in range,
                // with a random rounding mode.
                auto fill = [&](uint8_t* p) {
                    for (unsigned l = 0; l < 4; l++) {
                        float fv = float(int32_t(rng.next() % 200001) - 100000) / float(1 + rng.below(99));
                        if (rng.below(8) == 0)
                            fv = rng.below(2) ? 3e9f : __builtin_nanf("");
                        std::memcpy(p + 4 * l, &fv, 4);
                    }
                    if (rng.below(2)) {
                        double dv[2] = { double(int64_t(rng.next() % 2000001) - 1000000) / double(1 + rng.below(999)),
                            rng.below(6) == 0 ? 1e12 : double(int32_t(rng.next())) / 7.0 };
                        std::memcpy(p, dv, 16);
                    }
                };
                for (auto& x : c.in.xmm)
                    fill(x.b);
                if (e.mem)
                    fill(c.in.data + (e.ea - k_data_addr));
                c.in.mxcsr = 0x1f80 | uint32_t(rng.below(4) << 13);
            };
        }
    } else if (fam == "sse4") {
        // SSSE3 (XMM and MMX forms), SSE4.1, SSE4.2 (PCMPGTQ, PCMPxSTRx, CRC32).
        char name[40];
        static const uint8_t ssse3[] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x1c,
            0x1d, 0x1e };
        for (uint8_t o : ssse3) {
            snprintf(name, sizeof name, "66 0f 38 %02x", o);
            v.push_back({ name, { 0x66 }, { 0x0f, 0x38, o }, -1, true, 0, 4 });
            snprintf(name, sizeof name, "0f 38 %02x mm", o);
            v.push_back({ name, {}, { 0x0f, 0x38, o }, -1, true, 0, 4 });
        }
        v.push_back({ "palignr", { 0x66 }, { 0x0f, 0x3a, 0x0f }, -1, true, 1, 4 });
        v.push_back({ "palignr mm", {}, { 0x0f, 0x3a, 0x0f }, -1, true, 1, 4 });
        static const uint8_t sse41[] = { 0x10, 0x14, 0x15, 0x17, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x28, 0x29, 0x2b,
            0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41 };
        for (uint8_t o : sse41) {
            snprintf(name, sizeof name, "66 0f 38 %02x", o);
            v.push_back({ name, { 0x66 }, { 0x0f, 0x38, o }, -1, true, 0, 4 });
        }
        v.push_back({ "movntdqa", { 0x66 }, { 0x0f, 0x38, 0x2a }, -1, true, 0, 4, true, false });
        for (uint8_t o : { 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x14, 0x15, 0x17, 0x20, 0x21, 0x40, 0x41, 0x42,
                 0x60, 0x61, 0x62, 0x63 }) {
            snprintf(name, sizeof name, "66 0f 3a %02x ib", o);
            v.push_back({ name, { 0x66 }, { 0x0f, 0x3a, o }, -1, true, 1, (o >= 0x60) ? 4u | 8u : 4u });
        }
        v.push_back({ "pextrd/q", { 0x66 }, { 0x0f, 0x3a, 0x16 }, -1, true, 1, 4 | 8 });
        v.push_back({ "pinsrd/q", { 0x66 }, { 0x0f, 0x3a, 0x22 }, -1, true, 1, 4 | 8 });
        v.push_back({ "crc32 r,r/m8", { 0xf2 }, { 0x0f, 0x38, 0xf0 }, -1, true, 0, 4 | 8 });
        v.push_back({ "crc32 r,r/m", { 0xf2 }, { 0x0f, 0x38, 0xf1 }, -1, true, 0, 2 | 4 | 8 });
        for (auto& f : v) {
            f.xmm = true;
            f.align16 = true;
            const bool mmx = f.name.find(" mm") != std::string::npos;
            f.fix = [mmx](Rng& rng, OracleCase& c, Enc& e) {
                // Float lanes sometimes (ROUND, DPPS, BLENDV), zero bytes for
                // the implicit-length string compares, small lengths.
                for (auto& x : c.in.xmm)
                    for (unsigned l = 0; l < 4; l++) {
                        unsigned k = rng.below(6);
                        if (k == 0)
                            x.f[l] = float(int32_t(rng.next() % 20001) - 10000) / float(1 + rng.below(99));
                        else if (k == 1)
                            x.b[4 * l + rng.below(4)] = 0;
                    }
                if (e.mem && rng.below(3) == 0)
                    c.in.data[e.ea - k_data_addr + rng.below(16)] = 0;
                if (rng.below(2)) {
                    c.in.gpr[0] = uint64_t(int64_t(rng.below(40)) - 20);
                    c.in.gpr[2] = uint64_t(int64_t(rng.below(40)) - 20);
                }
                c.in.mxcsr = 0x1f80 | uint32_t(rng.below(4) << 13);
                if (mmx)
                    random_mmx_state(rng, c);
            };
        }
    } else if (fam == "align") {
        // Alignment checking: RFLAGS.AC set at CPL 3 (Linux keeps CR0.AM on),
        // operands at random, mostly misaligned addresses.
        v.push_back({ "mov m,r", {}, { 0x89 }, -1, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "mov r,m", {}, { 0x8b }, -1, true, 0, 1 | 2 | 4 | 8, true, false });
        v.push_back({ "add m,r", {}, { 0x01 }, -1, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "movzx r,m16", {}, { 0x0f, 0xb7 }, -1, true, 0, 4, true, false });
        v.push_back({ "inc m", {}, { 0xff }, 0, true, 0, 2 | 4 | 8, true, false });
        v.push_back({ "lock add m,r", { 0xf0 }, { 0x01 }, -1, true, 0, 4 | 8, true, false });
        v.push_back({ "xchg m,r", {}, { 0x87 }, -1, true, 0, 4 | 8, true, false });
        v.push_back({ "fld m64", {}, { 0xdd }, 0, true, 0, 4, true, false });
        v.push_back({ "fld m80", {}, { 0xdb }, 5, true, 0, 4, true, false });
        v.push_back({ "movups xmm,m", {}, { 0x0f, 0x10 }, -1, true, 0, 4, true, false });
        v.push_back({ "movups m,xmm", {}, { 0x0f, 0x11 }, -1, true, 0, 4, true, false });
        v.push_back({ "movdqu xmm,m", { 0xf3 }, { 0x0f, 0x6f }, -1, true, 0, 4, true, false });
        v.push_back({ "push r/m", {}, { 0xff }, 6, true, 0, 8, true, false, 0, stack_fix() });
        v.push_back({ "movq xmm,m64", { 0xf3 }, { 0x0f, 0x7e }, -1, true, 0, 4, true, false });
        v.push_back({ "movd mm,m32", {}, { 0x0f, 0x6e }, -1, true, 0, 4, true, false });
        for (auto& f : v) {
            Fix extra = f.fix;
            const bool push = f.name.rfind("push", 0) == 0;
            f.fix = [extra, push](Rng& rng, OracleCase& c, Enc& e) {
                if (extra)
                    extra(rng, c, e);
                if (push && rng.below(2))
                    c.in.gpr[4] += 1 + rng.below(7); // a misaligned stack
                c.in.rflags |= 0x40000;
            };
        }
    } else if (fam == "sse-fp") {
        struct P {
            const char* n;
            uint8_t p;
        };
        const P all[] = { { "ps", 0 }, { "pd", 0x66 }, { "ss", 0xf3 }, { "sd", 0xf2 } };
        char name[32];
        for (uint8_t o : { 0x10, 0x11, 0x51, 0x58, 0x59, 0x5a, 0x5c, 0x5d, 0x5e, 0x5f, 0xc2 })
            for (auto& p : all) {
                snprintf(name, sizeof name, "0f %02x %s", o, p.n);
                std::vector<uint8_t> pre;
                if (p.p)
                    pre.push_back(p.p);
                v.push_back({ name, pre, { 0x0f, o }, -1, true, o == 0xc2 ? 1u : 0u, 4 });
            }
        for (uint8_t o : { 0x52, 0x53 })
            for (auto& p : { all[0], all[2] }) {
                snprintf(name, sizeof name, "0f %02x %s", o, p.n);
                std::vector<uint8_t> pre;
                if (p.p)
                    pre.push_back(p.p);
                v.push_back({ name, pre, { 0x0f, o }, -1, true, 0, 4 });
            }
        for (uint8_t o : { 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x28, 0x29, 0x2e, 0x2f, 0x54, 0x55, 0x56, 0x57, 0xc6 })
            for (auto& p : { all[0], all[1] }) {
                snprintf(name, sizeof name, "0f %02x %s", o, p.n);
                std::vector<uint8_t> pre;
                if (p.p)
                    pre.push_back(p.p);
                bool mem_only = (o == 0x13 || o == 0x17 || ((o == 0x12 || o == 0x16) && p.p));
                v.push_back({ name, pre, { 0x0f, o }, -1, true, o == 0xc6 ? 1u : 0u, 4, true, !mem_only });
            }
        v.push_back({ "movmskps", {}, { 0x0f, 0x50 }, -1, true, 0, 4, false });
        v.push_back({ "movmskpd", { 0x66 }, { 0x0f, 0x50 }, -1, true, 0, 4, false });
        v.push_back({ "cvtdq2ps", {}, { 0x0f, 0x5b }, -1, true, 0, 4 });
        v.push_back({ "cvtps2dq", { 0x66 }, { 0x0f, 0x5b }, -1, true, 0, 4 });
        v.push_back({ "cvttps2dq", { 0xf3 }, { 0x0f, 0x5b }, -1, true, 0, 4 });
        v.push_back({ "cvttpd2dq", { 0x66 }, { 0x0f, 0xe6 }, -1, true, 0, 4 });
        v.push_back({ "cvtdq2pd", { 0xf3 }, { 0x0f, 0xe6 }, -1, true, 0, 4 });
        v.push_back({ "cvtpd2dq", { 0xf2 }, { 0x0f, 0xe6 }, -1, true, 0, 4 });
        v.push_back({ "cvtsi2ss", { 0xf3 }, { 0x0f, 0x2a }, -1, true, 0, 4 | 8 });
        v.push_back({ "cvtsi2sd", { 0xf2 }, { 0x0f, 0x2a }, -1, true, 0, 4 | 8 });
        v.push_back({ "cvttss2si", { 0xf3 }, { 0x0f, 0x2c }, -1, true, 0, 4 | 8 });
        v.push_back({ "cvttsd2si", { 0xf2 }, { 0x0f, 0x2c }, -1, true, 0, 4 | 8 });
        v.push_back({ "cvtss2si", { 0xf3 }, { 0x0f, 0x2d }, -1, true, 0, 4 | 8 });
        v.push_back({ "cvtsd2si", { 0xf2 }, { 0x0f, 0x2d }, -1, true, 0, 4 | 8 });
        // SSE3.
        v.push_back({ "addsubps", { 0xf2 }, { 0x0f, 0xd0 }, -1, true, 0, 4 });
        v.push_back({ "addsubpd", { 0x66 }, { 0x0f, 0xd0 }, -1, true, 0, 4 });
        v.push_back({ "haddps", { 0xf2 }, { 0x0f, 0x7c }, -1, true, 0, 4 });
        v.push_back({ "haddpd", { 0x66 }, { 0x0f, 0x7c }, -1, true, 0, 4 });
        v.push_back({ "hsubps", { 0xf2 }, { 0x0f, 0x7d }, -1, true, 0, 4 });
        v.push_back({ "hsubpd", { 0x66 }, { 0x0f, 0x7d }, -1, true, 0, 4 });
        v.push_back({ "movsldup", { 0xf3 }, { 0x0f, 0x12 }, -1, true, 0, 4 });
        v.push_back({ "movshdup", { 0xf3 }, { 0x0f, 0x16 }, -1, true, 0, 4 });
        v.push_back({ "movddup", { 0xf2 }, { 0x0f, 0x12 }, -1, true, 0, 4 });
        v.push_back({ "lddqu", { 0xf2 }, { 0x0f, 0xf0 }, -1, true, 0, 4, true, false });
        for (auto& f : v) {
            f.xmm = true;
            f.align16 = true;
            f.fix = [](Rng& rng, OracleCase& c, Enc& e) {
                static const uint64_t specials[] = { 0, 0x8000000000000000ull, 0x7ff0000000000000ull,
                    0xfff8000000000000ull, 0x7ff4000000000000ull, 1, 0x3ff0000000000000ull, 0x43e0000000000000ull };
                static const uint32_t fspecials[]
                    = { 0, 0x80000000u, 0x7f800000u, 0xffc00000u, 0x7fa00000u, 1, 0x3f800000u, 0x4f000000u };
                auto fill = [&](accel::x86::Vec128& x) {
                    for (int l = 0; l < 2; l++) {
                        switch (rng.below(4)) {
                        case 0:
                            x.q[l] = specials[rng.below(8)];
                            break;
                        case 1:
                            x.df[l] = double(int64_t(rng.next() % 200001) - 100000) / double(1 + rng.below(999));
                            break;
                        case 2:
                            x.d[2 * l] = fspecials[rng.below(8)];
                            x.d[2 * l + 1] = rng.below(2) ? fspecials[rng.below(8)] : uint32_t(rng.next());
                            break;
                        default:
                            x.f[2 * l] = float(int32_t(rng.next() % 20001) - 10000) / float(1 + rng.below(99));
                            x.f[2 * l + 1] = float(int32_t(rng.next() % 20001) - 10000) / float(1 + rng.below(99));
                            break;
                        }
                    }
                };
                for (auto& x : c.in.xmm)
                    fill(x);
                if (e.mem) {
                    accel::x86::Vec128 m;
                    fill(m);
                    std::memcpy(c.in.data + (e.ea - k_data_addr), &m, 16);
                }
                c.in.mxcsr = 0x1f80 | uint32_t(rng.below(4) << 13) | (rng.below(8) == 0 ? 0x8040 : 0)
                    | uint32_t(rng.below(64) & (rng.below(2) ? 0x3f : 0));
            };
        }
    } else if (fam == "x87") {
        char name[32];
        auto mem = [&](uint8_t op, int digit) {
            snprintf(name, sizeof name, "%02x /%d m", op, digit);
            v.push_back({ name, {}, { op }, digit, true, 0, 4, true, false });
        };
        auto regf = [&](uint8_t op, uint8_t modrm) {
            snprintf(name, sizeof name, "%02x %02x", op, modrm);
            v.push_back({ name, {}, { op, modrm }, -1, false, 0, 4 });
        };
        for (uint8_t op : { 0xd8, 0xdc, 0xda, 0xde })
            for (int dg = 0; dg < 8; dg++)
                mem(op, dg);
        for (int dg : { 0, 2, 3, 5, 7 })
            mem(0xd9, dg == 5 ? 7 : dg);
        for (int dg : { 0, 2, 3 })
            mem(0xdd, dg);
        mem(0xdd, 7);
        for (int dg : { 0, 2, 3, 5, 7 })
            mem(0xdb, dg);
        for (int dg : { 0, 2, 3, 5, 7 })
            mem(0xdf, dg);
        for (uint8_t i = 0; i < 8; i += 3) {
            for (int dg = 0; dg < 8; dg++) {
                regf(0xd8, uint8_t(0xc0 + dg * 8 + i));
                regf(0xdc, uint8_t(0xc0 + dg * 8 + i));
                if (dg != 2 && dg != 3)
                    regf(0xde, uint8_t(0xc0 + dg * 8 + i));
            }
            regf(0xd9, uint8_t(0xc0 + i));
            regf(0xd9, uint8_t(0xc8 + i));
            regf(0xdd, uint8_t(0xc0 + i));
            regf(0xdd, uint8_t(0xd0 + i));
            regf(0xdd, uint8_t(0xd8 + i));
            regf(0xdd, uint8_t(0xe0 + i));
            regf(0xdd, uint8_t(0xe8 + i));
            regf(0xdb, uint8_t(0xe8 + i));
            regf(0xdb, uint8_t(0xf0 + i));
            regf(0xdf, uint8_t(0xe8 + i));
            regf(0xdf, uint8_t(0xf0 + i));
            for (uint8_t base : { 0xc0, 0xc8, 0xd0, 0xd8 }) {
                regf(0xda, uint8_t(base + i));
                regf(0xdb, uint8_t(base + i));
            }
        }
        for (uint8_t m : { 0xe0, 0xe1, 0xe4, 0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xfa, 0xfc, 0xd0 })
            regf(0xd9, m);
        regf(0xda, 0xe9);
        regf(0xde, 0xd9);
        // Transcendentals and friends, FISTTP, environment and full saves.
        for (uint8_t m : { 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf9, 0xfb, 0xfe, 0xff })
            regf(0xd9, m);
        mem(0xdb, 1);
        mem(0xdd, 1);
        mem(0xdf, 1);
        mem(0xd9, 4);
        mem(0xd9, 6);
        mem(0xdd, 4);
        mem(0xdd, 6);
        mem(0xdf, 4);
        mem(0xdf, 6);
        regf(0xdb, 0xe2);
        regf(0xdb, 0xe3);
        regf(0xdf, 0xe0);
        for (auto& f : v)
            f.fix = [](Rng& rng, OracleCase& c, Enc& e) {
                // Mostly full stacks (so pushes overflow sometimes), random TOP,
                // values from doubles, small integers and specials.
                c.compare_x87 = true;
                unsigned top = rng.below(8);
                c.in.fsw = uint16_t(top << 11);
                c.in.ftw = rng.below(3) ? 0x7f : uint8_t(rng.next());
                c.in.ftw |= uint8_t(1u << top); // ST(0) valid
                c.in.fcw = uint16_t(0x37f & ~0x300u) | uint16_t(rng.below(4) << 8 | 0x40);
                if (rng.below(2))
                    c.in.fcw = 0x37f;
                c.in.fcw = uint16_t(c.in.fcw | (rng.below(4) << 10));
                for (auto& st : c.in.st) {
                    long double v;
                    switch (rng.below(5)) {
                    case 0:
                        v = (long double)(int64_t(rng.next() % 2001) - 1000);
                        break;
                    case 1:
                        v = (long double)(int64_t(rng.next())) / (long double)(1 + rng.below(1000));
                        break;
                    case 2:
                        v = rng.below(2) ? 0.0L : -0.0L;
                        break;
                    case 3:
                        v = (long double)double(int64_t(rng.next() % 100000)) * 1e-5L;
                        break;
                    default:
                        v = rng.below(2) ? __builtin_infl() : __builtin_nanl("");
                        break;
                    }
                    st = {};
                    std::memcpy(&st, &v, 10);
                }
                if (e.mem) {
                    double dv = double(int64_t(rng.next() % 200001) - 100000) / double(1 + rng.below(999));
                    uint8_t* p = c.in.data + (e.ea - k_data_addr);
                    if (rng.below(2))
                        std::memcpy(p, &dv, 8);
                    else {
                        float fv = float(dv);
                        std::memcpy(p, &fv, 4);
                    }
                    size_t op = (c.code[0] & 0xf0) == 0x40 ? 1 : 0;
                    if (c.code[op] == 0xdf && ((c.code[op + 1] >> 3) & 7) == 4 && rng.below(2)) {
                        // FBLD: a valid packed-BCD operand (18 digits and a sign).
                        for (unsigned k = 0; k < 9; k++)
                            p[k] = uint8_t(rng.below(10) | (rng.below(10) << 4));
                        p[9] = rng.below(2) ? 0x80 : 0;
                    }
                    if (c.code[0] == 0xd9 && ((c.code[1] >> 3) & 7) == 5) {
                        uint16_t cw = uint16_t(0x7f | (rng.below(4) << 8) | (rng.below(4) << 10));
                        std::memcpy(p, &cw, 2);
                    }
                }
            };
    } else if (fam == "legacy") {
        // Instructions that exist only outside 64-bit mode.
        for (uint8_t op : { 0x27, 0x2f, 0x37, 0x3f })
            v.push_back({ "bcd " + std::to_string(op), {}, { op }, -1, false, 0, 4, true, true,
                uint64_t(op == 0x27 || op == 0x2f ? k_of : (k_of | k_sf | k_zf | k_pf)) });
        v.push_back({ "aam", {}, { 0xd4 }, -1, false, 1, 4, true, true, k_of | k_af | k_cf,
            [](Rng& rng, OracleCase& c, Enc& e) {
                c.code[e.imm_pos] = uint8_t(rng.below(8) == 0 ? 10 : 1 + rng.below(255));
            } });
        v.push_back({ "aad", {}, { 0xd5 }, -1, false, 1, 4, true, true, k_of | k_af | k_cf });
        for (uint8_t r = 0; r < 8; r++) {
            v.push_back({ "inc r" + std::to_string(r), {}, { uint8_t(0x40 + r) }, -1, false, 0, 2 | 4 });
            v.push_back({ "dec r" + std::to_string(r), {}, { uint8_t(0x48 + r) }, -1, false, 0, 2 | 4 });
        }
        v.push_back({ "pusha", {}, { 0x60 }, -1, false, 0, 2 | 4, true, true, 0, stack_fix() });
        v.push_back({ "popa", {}, { 0x61 }, -1, false, 0, 2 | 4, true, true, 0, stack_fix() });
        v.push_back(
            { "push es/cs/ss/ds", {}, { 0x06 }, -1, false, 0, 4, true, true, 0, [](Rng& rng, OracleCase& c, Enc& e) {
                 stack_fix()(rng, c, e);
                 c.code[0] = uint8_t(0x06 + 8 * rng.below(4));
             } });
        v.push_back(
            { "lea r,m16", { 0x67 }, { 0x8d }, -1, true, 0, 2 | 4, true, false, 0, [](Rng& rng, OracleCase& c, Enc& e) {
                 // Rewrite the ModRM as a random 16-bit addressing form.
                 size_t pos = 0;
                 while (c.code[pos] != 0x8d)
                     pos++;
                 c.code.resize(pos + 1);
                 unsigned mod = rng.below(3), rm = rng.below(8);
                 c.code.push_back(uint8_t((mod << 6) | ((e.reg & 7) << 3) | rm));
                 unsigned disp = mod == 1 ? 1 : (mod == 2 || (mod == 0 && rm == 6)) ? 2 : 0;
                 for (unsigned i = 0; i < disp; i++)
                     c.code.push_back(uint8_t(rng.next()));
             } });
    } else if (fam == "string") {
        static const struct {
            const char* n;
            uint8_t op;
        } ops[] = { { "movs", 0xa4 }, { "cmps", 0xa6 }, { "stos", 0xaa }, { "lods", 0xac }, { "scas", 0xae } };
        for (auto& o : ops) {
            for (unsigned wide = 0; wide < 2; wide++) {
                std::vector<std::vector<uint8_t>> reps = { {}, { 0xf3 }, { 0xf2 } };
                for (auto& rp : reps) {
                    std::string n = std::string(rp.empty()  ? ""
                                            : rp[0] == 0xf3 ? "rep "
                                                            : "repne ")
                        + o.n + (wide ? "" : "b");
                    Form f { n, rp, { uint8_t(o.op + wide) }, -1, false, 0, wide ? 14u : 1u };
                    f.fix = [wide](Rng& rng, OracleCase& c, Enc& e) { string_fix(wide ? e.size : 1)(rng, c, e); };
                    v.push_back(f);
                }
            }
        }
    }
    return v;
}

} // namespace

uint64_t Rng::value()
{
    static const uint64_t edges[] = { 0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
        0xffffffff, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull, 0x100000000ull };
    switch (below(4)) {
    case 0:
        return edges[below(sizeof edges / sizeof edges[0])];
    case 1:
        return next() & 0xff;
    case 2:
        return uint64_t(int64_t(int8_t(next())));
    default:
        return next();
    }
}

std::vector<std::string> oracle_families()
{
    return { "alu", "muldiv", "shift", "bits", "move", "stack", "branch", "string", "sse-int", "sse-fp", "x87", "mmx", "sse4", "align", "bmi", "xsave",
        "32-alu", "32-muldiv", "32-shift", "32-bits", "32-move", "32-stack", "32-branch", "32-string", "32-legacy", "32-bmi", "32-xsave", "16-bmi" };
}

std::vector<OracleCase> generate_family(const std::string& family, unsigned count, uint64_t seed)
{
    Rng rng { seed | 1 };
    std::vector<OracleCase> out;
    unsigned bits = family.rfind("32-", 0) == 0 ? 32 : family.rfind("16-", 0) == 0 ? 16 : 64;
    std::string base = bits == 64 ? family : family.substr(3);
    auto has = [](const Form& f, const char* s) { return f.name.find(s) != std::string::npos; };
    for (const Form& f : family_forms(base)) {
        // Forms that only exist in 64-bit mode, or use RIP-relative code.
        if (bits != 64
            && (has(f, "movabs") || has(f, "movsxd") || has(f, "addr32") || has(f, "jrcxz") || f.name == "jmp r/m"
                || f.name.rfind("ret", 0) == 0))
            continue;
        // 16-bit code: no stack forms (SS stays the flat 32-bit one), no
        // 32-bit displacement encodings, no addressing-size tricks.
        if (bits == 16
            && (has(f, "rel32") || f.name.rfind("push", 0) == 0 || (f.name.rfind("pop", 0) == 0 && !has(f, "popcnt"))
                || has(f, "m16") || has(f, "cmpxchg8b") || has(f, "enter") || has(f, "leave") || has(f, "call")))
            continue;
        for (unsigned i = 0; i < count; i++)
            out.push_back(build(rng, f, bits));
    }
    return out;
}

} // namespace kiln::oracle
