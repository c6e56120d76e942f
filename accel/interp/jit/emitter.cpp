#include "accel/interp/jit/emitter.h"

#include <cstring>

namespace kiln::accel::interp::jit {

void Emitter::imm32(uint32_t v)
{
    for (int i = 0; i < 4; i++)
        byte(uint8_t(v >> (8 * i)));
}

void Emitter::imm64(uint64_t v)
{
    for (int i = 0; i < 8; i++)
        byte(uint8_t(v >> (8 * i)));
}

void Emitter::rex_prefix(bool w, uint8_t reg, uint8_t index, uint8_t base, bool force)
{
    uint8_t rex = 0x40;
    if (w)
        rex |= 8;
    if (reg != k_no_host_reg && (reg & 8))
        rex |= 4;
    if (index != k_no_host_reg && (index & 8))
        rex |= 2;
    if (base != k_no_host_reg && (base & 8))
        rex |= 1;
    if (rex != 0x40 || force)
        byte(rex);
}

void Emitter::modrm_mem(uint8_t reg, const Mem& m)
{
    const uint8_t b = m.base & 7;
    unsigned mod;
    if (m.disp == 0 && b != 5)
        mod = 0;
    else if (m.disp >= -128 && m.disp <= 127)
        mod = 1;
    else
        mod = 2;
    if (m.index == k_no_host_reg && b != 4) {
        byte(uint8_t(mod << 6 | (reg & 7) << 3 | b));
    } else {
        byte(uint8_t(mod << 6 | (reg & 7) << 3 | 4));
        const uint8_t idx = m.index == k_no_host_reg ? 4 : (m.index & 7);
        byte(uint8_t(m.scale << 6 | idx << 3 | b));
    }
    if (mod == 1)
        byte(uint8_t(int8_t(m.disp)));
    else if (mod == 2)
        imm32(uint32_t(m.disp));
}

void Emitter::op_mem(std::initializer_list<uint8_t> opcode, unsigned size, uint8_t reg, const Mem& m, bool byte_reg)
{
    if (size == 2)
        byte(0x66);
    rex_prefix(size == 8, reg, m.index, m.base, byte_reg && size == 1 && reg >= 4 && reg < 8);
    for (uint8_t b : opcode)
        byte(b);
    modrm_mem(reg, m);
}

void Emitter::op_reg(std::initializer_list<uint8_t> opcode, unsigned size, uint8_t reg, uint8_t rm, bool byte_regs)
{
    if (size == 2)
        byte(0x66);
    const bool force = byte_regs && size == 1 && ((reg >= 4 && reg < 8) || (rm >= 4 && rm < 8));
    rex_prefix(size == 8, reg, k_no_host_reg, rm, force);
    for (uint8_t b : opcode)
        byte(b);
    byte(uint8_t(0xc0 | (reg & 7) << 3 | (rm & 7)));
}

void Emitter::load(unsigned size, uint8_t dst, const Mem& m)
{
    switch (size) {
    case 1:
        op_mem({ 0x0f, 0xb6 }, 4, dst, m);
        break;
    case 2:
        op_mem({ 0x0f, 0xb7 }, 4, dst, m);
        break;
    default:
        op_mem({ 0x8b }, size, dst, m);
        break;
    }
}

void Emitter::store(unsigned size, const Mem& m, uint8_t src)
{
    op_mem({ uint8_t(size == 1 ? 0x88 : 0x89) }, size, src, m, true);
}

void Emitter::mov_imm(uint8_t dst, uint64_t v)
{
    if (v <= 0xffffffffull) {
        rex_prefix(false, k_no_host_reg, k_no_host_reg, dst, false);
        byte(uint8_t(0xb8 + (dst & 7)));
        imm32(uint32_t(v));
    } else if (int64_t(v) == int64_t(int32_t(v))) {
        op_reg({ 0xc7 }, 8, 0, dst);
        imm32(uint32_t(v));
    } else {
        rex_prefix(true, k_no_host_reg, k_no_host_reg, dst, false);
        byte(uint8_t(0xb8 + (dst & 7)));
        imm64(v);
    }
}

void Emitter::store_imm32(unsigned size, const Mem& m, uint32_t v)
{
    op_mem({ uint8_t(size == 1 ? 0xc6 : 0xc7) }, size, 0, m);
    if (size == 1)
        byte(uint8_t(v));
    else if (size == 2)
        byte(uint8_t(v)), byte(uint8_t(v >> 8));
    else
        imm32(v);
}

void Emitter::alu_ri(unsigned op, unsigned size, uint8_t reg, int32_t imm)
{
    if (size == 1) {
        op_reg({ 0x80 }, 1, uint8_t(op), reg, true);
        byte(uint8_t(imm));
    } else if (imm >= -128 && imm <= 127) {
        op_reg({ 0x83 }, size, uint8_t(op), reg);
        byte(uint8_t(int8_t(imm)));
    } else {
        op_reg({ 0x81 }, size, uint8_t(op), reg);
        if (size == 2)
            byte(uint8_t(imm)), byte(uint8_t(imm >> 8));
        else
            imm32(uint32_t(imm));
    }
}

void Emitter::alu_mi(unsigned op, unsigned size, const Mem& m, int32_t imm)
{
    if (size == 1) {
        op_mem({ 0x80 }, 1, uint8_t(op), m);
        byte(uint8_t(imm));
    } else if (imm >= -128 && imm <= 127) {
        op_mem({ 0x83 }, size, uint8_t(op), m);
        byte(uint8_t(int8_t(imm)));
    } else {
        op_mem({ 0x81 }, size, uint8_t(op), m);
        if (size == 2)
            byte(uint8_t(imm)), byte(uint8_t(imm >> 8));
        else
            imm32(uint32_t(imm));
    }
}

void Emitter::shift_ri(unsigned kind, unsigned size, uint8_t reg, uint8_t count)
{
    if (count == 1) {
        op_reg({ uint8_t(size == 1 ? 0xd0 : 0xd1) }, size, uint8_t(kind), reg, true);
    } else {
        op_reg({ uint8_t(size == 1 ? 0xc0 : 0xc1) }, size, uint8_t(kind), reg, true);
        byte(count);
    }
}

void Emitter::push(uint8_t r)
{
    rex_prefix(false, k_no_host_reg, k_no_host_reg, r, false);
    byte(uint8_t(0x50 + (r & 7)));
}

void Emitter::pop(uint8_t r)
{
    rex_prefix(false, k_no_host_reg, k_no_host_reg, r, false);
    byte(uint8_t(0x58 + (r & 7)));
}

void Emitter::call_abs(const void* fn)
{
    mov_imm(RAX, reinterpret_cast<uint64_t>(fn));
    byte(0xff);
    byte(0xd0); // call rax
}

Label Emitter::jcc(unsigned cc)
{
    byte(0x0f);
    byte(uint8_t(0x80 + cc));
    Label l { size() };
    imm32(0);
    return l;
}

Label Emitter::jmp()
{
    byte(0xe9);
    Label l { size() };
    imm32(0);
    return l;
}

void Emitter::jmp_to(uint32_t target) { bind_to(jmp(), target); }

void Emitter::bind_to(Label l, uint32_t target)
{
    const int32_t rel = int32_t(target - (l.at + 4));
    std::memcpy(&m_code[l.at], &rel, 4);
}

} // namespace kiln::accel::interp::jit
