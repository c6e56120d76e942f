#include "accel/interp/decoder.h"

#include <array>
#include <cstring>

namespace kiln::accel::interp {

namespace {

// Immediate shapes.
enum Imm : uint8_t {
    I_NONE,
    I_B, // 8-bit
    I_W, // 16-bit
    I_Z, // 16 or 32 by operand size
    I_V, // 16, 32 or 64 by operand size (MOV r, imm)
    I_WB, // ENTER: imm16, imm8
    I_AP, // far pointer: offset (z) + selector (w)
    I_MOFFS, // offset of address size
    I_GRP3B, // F6: imm8 when reg is 0 or 1 (TEST)
    I_GRP3Z, // F7: immz when reg is 0 or 1 (TEST)
    I_JZ, // near branch displacement: 16 or 32 (32 in 64-bit mode)
};

// Attribute byte per opcode.
constexpr uint16_t A_M = 1u << 4; // has ModRM
constexpr uint16_t A_I64 = 1u << 5; // invalid in 64-bit mode
constexpr uint16_t A_D64 = 1u << 6; // 64-bit default operand size in 64-bit mode
constexpr uint16_t A_F64 = 1u << 7; // operand size forced to 64 in 64-bit mode
constexpr uint16_t A_BAD = 1u << 8; // undefined opcode
constexpr uint16_t A_PFX = 1u << 9; // prefix byte (handled before the table)
constexpr uint16_t A_BYTE = 1u << 10; // byte operand (operand size irrelevant)

using Table = std::array<uint16_t, 256>;

constexpr Table make_1byte()
{
    Table t {};
    // ALU rows 00-3F: r/m,r / r,r/m / AL,ib / eAX,iz; x6/x7/xE/xF misc.
    for (unsigned row = 0; row < 8; row++) {
        unsigned b = row * 8;
        t[b + 0] = A_M | A_BYTE;
        t[b + 1] = A_M;
        t[b + 2] = A_M | A_BYTE;
        t[b + 3] = A_M;
        t[b + 4] = I_B | A_BYTE;
        t[b + 5] = I_Z;
    }
    t[0x06] = t[0x07] = t[0x0e] = t[0x16] = t[0x17] = t[0x1e] = t[0x1f] = A_I64;
    t[0x0f] = A_PFX; // escape
    t[0x26] = t[0x2e] = t[0x36] = t[0x3e] = A_PFX;
    t[0x27] = t[0x2f] = t[0x37] = t[0x3f] = A_I64;
    for (unsigned b = 0x40; b < 0x50; b++)
        t[b] = 0; // INC/DEC (REX in 64-bit mode, handled as a prefix)
    for (unsigned b = 0x50; b < 0x60; b++)
        t[b] = A_D64;
    t[0x60] = t[0x61] = A_I64;
    t[0x62] = A_M | A_I64;
    t[0x63] = A_M;
    t[0x64] = t[0x65] = t[0x66] = t[0x67] = A_PFX;
    t[0x68] = I_Z | A_D64;
    t[0x69] = A_M | I_Z;
    t[0x6a] = I_B | A_D64;
    t[0x6b] = A_M | I_B;
    t[0x6c] = t[0x6e] = A_BYTE;
    t[0x6d] = t[0x6f] = 0;
    for (unsigned b = 0x70; b < 0x80; b++)
        t[b] = I_B | A_F64;
    t[0x80] = A_M | I_B | A_BYTE;
    t[0x81] = A_M | I_Z;
    t[0x82] = A_M | I_B | A_I64 | A_BYTE;
    t[0x83] = A_M | I_B;
    for (unsigned b = 0x84; b < 0x90; b++)
        t[b] = A_M;
    t[0x84] = t[0x86] = t[0x88] = t[0x8a] = A_M | A_BYTE;
    t[0x8f] = A_M | A_D64;
    for (unsigned b = 0x90; b < 0xa0; b++)
        t[b] = 0;
    t[0x9a] = I_AP | A_I64;
    t[0x9c] = t[0x9d] = A_D64;
    t[0xa0] = t[0xa2] = I_MOFFS | A_BYTE;
    t[0xa1] = t[0xa3] = I_MOFFS;
    t[0xa4] = t[0xa6] = t[0xaa] = t[0xac] = t[0xae] = A_BYTE;
    t[0xa8] = I_B | A_BYTE;
    t[0xa9] = I_Z;
    for (unsigned b = 0xb0; b < 0xb8; b++)
        t[b] = I_B | A_BYTE;
    for (unsigned b = 0xb8; b < 0xc0; b++)
        t[b] = I_V;
    t[0xc0] = A_M | I_B | A_BYTE;
    t[0xc1] = A_M | I_B;
    t[0xc2] = I_W | A_F64;
    t[0xc3] = A_F64;
    t[0xc4] = t[0xc5] = A_M | A_I64; // LES/LDS (VEX: see decode())
    t[0xc6] = A_M | I_B | A_BYTE;
    t[0xc7] = A_M | I_Z;
    t[0xc8] = I_WB | A_D64;
    t[0xc9] = A_D64;
    t[0xca] = I_W;
    t[0xcd] = I_B;
    t[0xce] = A_I64;
    t[0xd0] = t[0xd2] = A_M | A_BYTE;
    t[0xd1] = t[0xd3] = A_M;
    t[0xd4] = t[0xd5] = I_B | A_I64;
    t[0xd6] = A_I64;
    for (unsigned b = 0xd8; b < 0xe0; b++)
        t[b] = A_M;
    for (unsigned b = 0xe0; b < 0xe4; b++)
        t[b] = I_B | A_F64;
    t[0xe4] = t[0xe6] = I_B | A_BYTE;
    t[0xe5] = t[0xe7] = I_B;
    t[0xe8] = t[0xe9] = I_JZ | A_F64;
    t[0xea] = I_AP | A_I64;
    t[0xeb] = I_B | A_F64;
    t[0xec] = t[0xee] = A_BYTE;
    t[0xf0] = t[0xf2] = t[0xf3] = A_PFX;
    t[0xf6] = A_M | I_GRP3B | A_BYTE;
    t[0xf7] = A_M | I_GRP3Z;
    t[0xfe] = A_M | A_BYTE;
    t[0xff] = A_M;
    return t;
}

constexpr Table make_0f()
{
    Table t {};
    for (unsigned b = 0; b < 256; b++)
        t[b] = A_M;
    t[0x04] = t[0x0a] = t[0x0c] = A_BAD;
    t[0x05] = t[0x06] = t[0x07] = t[0x08] = t[0x09] = t[0x0b] = 0;
    t[0x0e] = A_BAD; // FEMMS (3DNow!) is not offered
    t[0x0f] = A_BAD; // 3DNow!
    t[0x24] = t[0x25] = t[0x26] = t[0x27] = A_BAD;
    for (unsigned b = 0x30; b < 0x38; b++)
        t[b] = 0;
    t[0x36] = A_BAD;
    t[0x38] = t[0x3a] = A_PFX; // three-byte escapes
    t[0x39] = t[0x3b] = t[0x3c] = t[0x3d] = t[0x3e] = t[0x3f] = A_BAD;
    t[0x70] = t[0x71] = t[0x72] = t[0x73] = A_M | I_B;
    t[0x77] = 0;
    t[0x7a] = t[0x7b] = A_BAD;
    for (unsigned b = 0x80; b < 0x90; b++)
        t[b] = I_JZ | A_F64;
    t[0xa0] = t[0xa1] = t[0xa8] = t[0xa9] = A_D64;
    t[0xa2] = t[0xaa] = 0;
    t[0xa4] = t[0xac] = A_M | I_B;
    t[0xa6] = t[0xa7] = A_BAD;
    t[0xba] = A_M | I_B;
    t[0xc2] = t[0xc4] = t[0xc5] = t[0xc6] = A_M | I_B;
    for (unsigned b = 0xc8; b < 0xd0; b++)
        t[b] = 0;
    return t;
}

constexpr Table k_1byte = make_1byte();
constexpr Table k_0f = make_0f();

uint64_t load_le(const uint8_t* p, unsigned n)
{
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    return v;
}

// 16-bit ModRM r/m: base and index registers for rm 0-7.
constexpr uint8_t k_rm16_base[8] = { 3, 3, 5, 5, 6, 7, 5, 3 }; // BX BX BP BP SI DI BP BX
constexpr uint8_t k_rm16_index[8] = { 6, 7, 6, 7, k_no_reg, k_no_reg, k_no_reg, k_no_reg };

// The VEX prefix at bytes[pos] (C4: 3 bytes, C5: 2 bytes, `b` its first
// byte) and the opcode after it. 66/F2/F3/LOCK or REX before VEX make the
// instruction invalid (#UD).
template <typename More>
DecodeStatus decode_vex(const uint8_t* bytes, size_t& pos, More& more, bool mode64, DecodedInsn& out, uint8_t& b,
    uint16_t& attr)
{
    if (out.rex || (out.prefixes & (k_pfx_lock | k_pfx_rep | k_pfx_repne | k_pfx_opsize)))
        return DecodeStatus::Invalid;
    unsigned map = 1;
    uint8_t r = 0, x = 0, bb = 0, w = 0, last;
    if (b == 0xc4) {
        uint8_t b1 = bytes[pos]; // the caller checked it is there
        if ((b1 & 0x1f) < 1 || (b1 & 0x1f) > 3)
            return DecodeStatus::Invalid; // reserved opcode map
        if (DecodeStatus s = more(2); s != DecodeStatus::Ok)
            return s;
        r = !(b1 & 0x80);
        x = !(b1 & 0x40);
        bb = !(b1 & 0x20);
        map = b1 & 0x1f;
        last = bytes[pos + 1];
        w = last >> 7;
        pos += 2;
    } else {
        last = bytes[pos];
        r = !(last & 0x80);
        pos += 1;
    }
    out.vex = uint8_t(k_vex_present | ((last & 4) ? k_vex_l : 0) | (w ? k_vex_w : 0));
    out.vex_pp = last & 3;
    out.vvvv = uint8_t((~last >> 3) & 0xf);
    if (mode64) {
        out.rex = uint8_t(0x40 | (w << 3) | (r << 2) | (x << 1) | bb);
    } else {
        out.vvvv &= 7; // VEX.B and the top bit of vvvv are ignored outside 64-bit mode
    }
    if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
        return s;
    b = bytes[pos++];
    out.op = uint16_t(k_map_vex | (map << 8) | b);
    // Operand shapes: map 0F as its legacy table (VZEROUPPER/ALL have no
    // ModRM, the imm8 forms keep theirs); 0F38 ModRM only; 0F3A ModRM + imm8.
    if (map == 1)
        attr = uint16_t(k_0f[b] & (A_M | 0xf));
    else
        attr = uint16_t(A_M | (map == 3 ? I_B : I_NONE));
    return DecodeStatus::Ok;
}

} // namespace

DecodeStatus decode(const uint8_t* bytes, size_t avail, CodeSize size, DecodedInsn& out)
{
    out = DecodedInsn {};
    const bool mode64 = size == CodeSize::Bits64;
    size_t limit = avail < 15 ? avail : 15;
    size_t pos = 0;
    auto more = [&](size_t n) -> DecodeStatus {
        if (pos + n <= limit)
            return DecodeStatus::Ok;
        return avail >= 15 || pos + n > 15 ? DecodeStatus::TooLong : DecodeStatus::NeedMore;
    };

    // Legacy prefixes, then (64-bit mode) REX immediately before the opcode.
    uint8_t b;
    for (;;) {
        if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
            return s;
        b = bytes[pos];
        switch (b) {
        case 0xf0:
            out.prefixes |= k_pfx_lock;
            break;
        case 0xf2:
            out.prefixes = (out.prefixes & ~k_pfx_rep) | k_pfx_repne;
            break;
        case 0xf3:
            out.prefixes = (out.prefixes & ~k_pfx_repne) | k_pfx_rep;
            break;
        case 0x66:
            out.prefixes |= k_pfx_opsize;
            break;
        case 0x67:
            out.prefixes |= k_pfx_addrsize;
            break;
        case 0x26:
            out.seg = 0;
            break;
        case 0x2e:
            out.seg = 1;
            break;
        case 0x36:
            out.seg = 2;
            break;
        case 0x3e:
            out.seg = 3;
            break;
        case 0x64:
            out.seg = 4;
            break;
        case 0x65:
            out.seg = 5;
            break;
        default:
            if (mode64 && (b & 0xf0) == 0x40) {
                // REX counts only if the opcode follows; a legacy prefix after it voids it.
                out.rex = b;
                pos++;
                if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                    return s;
                uint8_t next = bytes[pos];
                if ((next & 0xf0) == 0x40 || next == 0xf0 || next == 0xf2 || next == 0xf3 || next == 0x66
                    || next == 0x67 || next == 0x26 || next == 0x2e || next == 0x36 || next == 0x3e || next == 0x64
                    || next == 0x65) {
                    out.rex = 0;
                    continue;
                }
                b = next;
            }
            goto opcode;
        }
        // In 64-bit mode ES/CS/SS/DS overrides are ignored.
        if (mode64 && out.seg < 4)
            out.seg = k_no_seg;
        pos++;
    }
opcode:
    if (out.rex)
        out.prefixes |= k_pfx_rex;
    pos++;
    uint16_t attr;
    if (b == 0x0f) {
        if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
            return s;
        b = bytes[pos++];
        if (b == 0x38 || b == 0x3a) {
            uint16_t map = b == 0x38 ? k_map_0f38 : k_map_0f3a;
            if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                return s;
            b = bytes[pos++];
            out.op = map | b;
            attr = A_M | (map == k_map_0f3a ? I_B : I_NONE);
        } else {
            out.op = k_map_0f | b;
            attr = k_0f[b];
        }
    } else {
        out.op = b;
        attr = k_1byte[b];
        // C4/C5 are VEX in 64-bit mode; elsewhere only when the next byte
        // would be a register ModRM (LES/LDS need memory).
        if (b == 0xc4 || b == 0xc5) {
            if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                return s;
            if (mode64 || (bytes[pos] & 0xc0) == 0xc0) {
                if (DecodeStatus s = decode_vex(bytes, pos, more, mode64, out, b, attr); s != DecodeStatus::Ok)
                    return s;
            }
        }
    }
    if (attr & A_BAD)
        return DecodeStatus::Invalid;
    if (mode64 && (attr & A_I64))
        return DecodeStatus::Invalid;

    // Operand and address size.
    unsigned opsize;
    unsigned addrsize;
    bool p66 = out.prefixes & k_pfx_opsize;
    bool p67 = out.prefixes & k_pfx_addrsize;
    switch (size) {
    case CodeSize::Bits16:
        opsize = p66 ? 4 : 2;
        addrsize = p67 ? 4 : 2;
        break;
    case CodeSize::Bits32:
        opsize = p66 ? 2 : 4;
        addrsize = p67 ? 2 : 4;
        break;
    default:
        addrsize = p67 ? 4 : 8;
        if (out.rex & 0x8)
            opsize = 8;
        else if (attr & A_F64)
            opsize = 8;
        else if (attr & A_D64)
            opsize = p66 ? 2 : 8;
        else
            opsize = p66 ? 2 : 4;
        break;
    }
    if (out.vex) // 32-bit operands unless VEX.W in 64-bit mode; 66 is never an operand-size prefix here
        opsize = (out.rex & 0x8) ? 8 : 4;
    out.opsize = uint8_t(opsize);
    out.addrsize = uint8_t(addrsize);

    if (attr & A_M) {
        if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
            return s;
        uint8_t modrm = bytes[pos++];
        out.has_modrm = true;
        out.modrm = modrm;
        out.mod = modrm >> 6;
        out.reg = ((modrm >> 3) & 7) | ((out.rex & 0x4) << 1);
        uint8_t rm = modrm & 7;
        out.rm = rm | ((out.rex & 0x1) << 3);
        // MOV to/from control and debug registers always use a register operand.
        if (out.op == (k_map_0f | 0x20) || out.op == (k_map_0f | 0x21) || out.op == (k_map_0f | 0x22)
            || out.op == (k_map_0f | 0x23))
            out.mod = 3;
        if (out.mod != 3) {
            if (addrsize == 2) {
                if (out.mod == 0 && rm == 6) {
                    if (DecodeStatus s = more(2); s != DecodeStatus::Ok)
                        return s;
                    out.disp = int16_t(load_le(bytes + pos, 2));
                    pos += 2;
                } else {
                    out.base = k_rm16_base[rm];
                    out.index = k_rm16_index[rm];
                    out.default_ss = out.base == 5;
                    if (out.mod == 1) {
                        if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                            return s;
                        out.disp = int8_t(bytes[pos++]);
                    } else if (out.mod == 2) {
                        if (DecodeStatus s = more(2); s != DecodeStatus::Ok)
                            return s;
                        out.disp = int16_t(load_le(bytes + pos, 2));
                        pos += 2;
                    }
                }
            } else {
                bool disp32 = out.mod == 2;
                if (rm == 4) {
                    if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                        return s;
                    uint8_t sib = bytes[pos++];
                    out.scale = sib >> 6;
                    uint8_t index = ((sib >> 3) & 7) | ((out.rex & 0x2) << 2);
                    out.index = index == 4 ? k_no_reg : index;
                    uint8_t base = sib & 7;
                    if (base == 5 && out.mod == 0) {
                        out.base = k_no_reg;
                        disp32 = true;
                    } else {
                        out.base = base | ((out.rex & 0x1) << 3);
                    }
                } else if (rm == 5 && out.mod == 0) {
                    disp32 = true;
                    out.rip_relative = mode64;
                } else {
                    out.base = out.rm;
                }
                out.default_ss = out.base == 4 || out.base == 5;
                if (disp32) {
                    if (DecodeStatus s = more(4); s != DecodeStatus::Ok)
                        return s;
                    out.disp = int32_t(load_le(bytes + pos, 4));
                    pos += 4;
                } else if (out.mod == 1) {
                    if (DecodeStatus s = more(1); s != DecodeStatus::Ok)
                        return s;
                    out.disp = int8_t(bytes[pos++]);
                }
            }
        }
    }

    unsigned imm = 0;
    unsigned imm2 = 0;
    switch (Imm(attr & 0xf)) {
    case I_NONE:
        break;
    case I_B:
        imm = 1;
        break;
    case I_W:
        imm = 2;
        break;
    case I_Z:
        imm = opsize == 2 ? 2 : 4;
        break;
    case I_V:
        imm = opsize;
        break;
    case I_WB:
        imm = 2;
        imm2 = 1;
        break;
    case I_AP:
        imm = opsize == 2 ? 2 : 4;
        imm2 = 2;
        break;
    case I_MOFFS:
        imm = addrsize;
        break;
    case I_GRP3B:
        imm = (out.reg & 7) < 2 ? 1 : 0;
        break;
    case I_GRP3Z:
        imm = (out.reg & 7) < 2 ? (opsize == 2 ? 2 : 4) : 0;
        break;
    case I_JZ:
        imm = (opsize == 2 && !mode64) ? 2 : 4;
        break;
    }
    if (imm) {
        if (DecodeStatus s = more(imm + imm2); s != DecodeStatus::Ok)
            return s;
        out.imm = load_le(bytes + pos, imm);
        out.imm_size = uint8_t(imm);
        pos += imm;
        if (imm2) {
            out.imm2 = uint16_t(load_le(bytes + pos, imm2));
            pos += imm2;
        }
    }
    out.length = uint8_t(pos);
    return DecodeStatus::Ok;
}

} // namespace kiln::accel::interp
