// Emitter: a small x86-64 assembler for the JIT. It encodes the handful of
// instruction shapes the compiler uses (ModRM register/memory forms,
// immediates, rel32 branches with later patching) into a byte vector; the
// code buffer copies the result into executable memory.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace kiln::accel::interp::jit {

enum HostReg : uint8_t {
    RAX,
    RCX,
    RDX,
    RBX,
    RSP,
    RBP,
    RSI,
    RDI,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
};
inline constexpr uint8_t k_no_host_reg = 0xff;

// [base + index * 2^scale + disp]; base is always a register here.
struct Mem {
    uint8_t base;
    uint8_t index = k_no_host_reg;
    uint8_t scale = 0;
    int32_t disp = 0;
};

// A rel32 field to patch once its target is known.
struct Label {
    uint32_t at = ~0u; // offset of the rel32 field
};

class Emitter {
public:
    const std::vector<uint8_t>& bytes() const { return m_code; }
    uint32_t size() const { return uint32_t(m_code.size()); }
    void byte(uint8_t b) { m_code.push_back(b); }
    void imm32(uint32_t v);
    void imm64(uint64_t v);

    // `opcode` with a ModRM whose reg field is `reg` (a register or a /digit)
    // and whose r/m is memory `m`. `size` picks 66/REX.W; size 1 forces a
    // REX prefix when `reg` names SPL..DIL (byte_reg).
    void op_mem(std::initializer_list<uint8_t> opcode, unsigned size, uint8_t reg, const Mem& m, bool byte_reg = false);
    // The same with a register r/m.
    void op_reg(std::initializer_list<uint8_t> opcode, unsigned size, uint8_t reg, uint8_t rm, bool byte_regs = false);

    void mov_rr(unsigned size, uint8_t dst, uint8_t src) { op_reg({ 0x8b }, size, dst, src); }
    void load(unsigned size, uint8_t dst, const Mem& m); // zero-extends 1/2-byte loads
    void store(unsigned size, const Mem& m, uint8_t src);
    void mov_imm(uint8_t dst, uint64_t v); // shortest form
    void store_imm32(unsigned size, const Mem& m, uint32_t v); // size 1, 2, 4 or 8 (sign-extended)
    void lea(uint8_t dst, const Mem& m) { op_mem({ 0x8d }, 8, dst, m); }
    // ALU group 1 (0 ADD .. 7 CMP) reg, imm (sign-extended imm8/imm32).
    void alu_ri(unsigned op, unsigned size, uint8_t reg, int32_t imm);
    void alu_mi(unsigned op, unsigned size, const Mem& m, int32_t imm);
    void shift_ri(unsigned kind, unsigned size, uint8_t reg, uint8_t count);
    void push(uint8_t r);
    void pop(uint8_t r);
    void call_abs(const void* fn); // through RAX
    void ret() { byte(0xc3); }
    Label jcc(unsigned cc); // rel32, patched later
    Label jmp();
    void jmp_to(uint32_t target);
    void bind(Label l) { bind_to(l, size()); }
    void bind_to(Label l, uint32_t target);
    void pushfq() { byte(0x9c); }
    void popfq() { byte(0x9d); }

private:
    void rex_prefix(bool w, uint8_t reg, uint8_t index, uint8_t base, bool force);
    void modrm_mem(uint8_t reg, const Mem& m);

    std::vector<uint8_t> m_code;
};

} // namespace kiln::accel::interp::jit
