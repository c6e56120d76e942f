// Decoder: x86 instruction bytes -> DecodedInsn (length, prefixes, operand
// and address size, ModRM/SIB operands, displacement, immediates).
//
// The decoder knows the shape of every opcode in the 1-byte, 0F, 0F38 and
// 0F3A maps, including ones the executor does not implement, so lengths are
// right even for instructions that later raise #UD. It is pure: no CPU
// state beyond the code size, so decoded instructions can be cached per
// guest-physical address.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::accel::interp {

enum class CodeSize : uint8_t { Bits16, Bits32, Bits64 };

// Opcode map, stored in the top byte of DecodedInsn::op.
inline constexpr uint16_t k_map_1byte = 0x000;
inline constexpr uint16_t k_map_0f = 0x100;
inline constexpr uint16_t k_map_0f38 = 0x200;
inline constexpr uint16_t k_map_0f3a = 0x300;
// VEX-encoded instructions: k_map_vex | map | opcode byte (never aliases a
// legacy opcode, so legacy handlers never see a VEX instruction).
inline constexpr uint16_t k_map_vex = 0x400;

inline constexpr uint8_t k_no_reg = 0xff;
inline constexpr uint8_t k_no_seg = 0xff;

// Prefix bits.
inline constexpr uint8_t k_pfx_lock = 1u << 0;
inline constexpr uint8_t k_pfx_rep = 1u << 1; // F3 (REP/REPE), last of F2/F3 wins
inline constexpr uint8_t k_pfx_repne = 1u << 2; // F2
inline constexpr uint8_t k_pfx_opsize = 1u << 3; // 66 present
inline constexpr uint8_t k_pfx_addrsize = 1u << 4; // 67 present
inline constexpr uint8_t k_pfx_rex = 1u << 5; // a REX prefix is in effect

inline constexpr uint8_t k_vex_present = 1u << 0;
inline constexpr uint8_t k_vex_l = 1u << 1;
inline constexpr uint8_t k_vex_w = 1u << 2;

struct DecodedInsn {
    uint16_t op = 0; // map | opcode byte
    uint8_t length = 0;
    uint8_t prefixes = 0;
    uint8_t rex = 0; // raw REX byte (0x40-0x4f) or 0
    uint8_t opsize = 4; // operand size in bytes: 2, 4 or 8
    uint8_t addrsize = 4; // address size in bytes: 2, 4 or 8
    uint8_t seg = k_no_seg; // segment override (x86::Seg) or k_no_seg

    bool has_modrm = false;
    uint8_t modrm = 0;
    uint8_t mod = 0; // ModRM.mod
    uint8_t reg = 0; // ModRM.reg with REX.R (0-15)
    uint8_t rm = 0; // ModRM.rm with REX.B (register operand when mod == 3)
    // Memory operand (mod != 3): base + index*2^scale + disp.
    uint8_t base = k_no_reg; // GPR number or k_no_reg
    uint8_t index = k_no_reg; // GPR number or k_no_reg
    uint8_t scale = 0; // shift count 0-3
    bool rip_relative = false; // base is the address of the next instruction
    bool default_ss = false; // base is rSP/rBP: default segment is SS
    int32_t disp = 0;

    uint8_t imm_size = 0;
    uint64_t imm = 0; // first immediate, zero-extended (sign-extend at use)
    uint16_t imm2 = 0; // second immediate: ENTER's level byte, far pointer selector

    // VEX prefix (C4/C5): REX.R/X/B/W come through `rex` in 64-bit mode.
    uint8_t vex = 0; // k_vex_* bits, 0 without VEX
    uint8_t vex_pp = 0; // implied prefix: 0 none, 1 66, 2 F3, 3 F2
    uint8_t vvvv = 0; // VEX.vvvv register (un-inverted; 0-7 outside 64-bit mode)

    bool is_mem() const { return has_modrm && mod != 3; }
    uint8_t opcode() const { return op & 0xff; }
    bool lock() const { return prefixes & k_pfx_lock; }
    bool rep() const { return prefixes & k_pfx_rep; }
    bool repne() const { return prefixes & k_pfx_repne; }
    bool has_66() const { return prefixes & k_pfx_opsize; }
    bool rex_w() const { return rex & 0x8; }
    bool is_vex() const { return vex != 0; }
};

enum class DecodeStatus {
    Ok,
    NeedMore, // the bytes given end before the instruction does
    TooLong, // more than 15 bytes: #GP(0)
    Invalid, // not an instruction in this mode: #UD
};

// Decodes one instruction from bytes[0..avail). Never reads past `avail`.
DecodeStatus decode(const uint8_t* bytes, size_t avail, CodeSize size, DecodedInsn& out);

} // namespace kiln::accel::interp
