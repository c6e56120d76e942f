// Plan: what the compiler makes of one decoded instruction — an inline form
// (and its operand shape) or a handler call — and how it uses the
// arithmetic flags (for the flag-liveness pass).
#pragma once

#include <cstdint>

#include "accel/interp/decoder.h"

namespace kiln::accel::interp::jit {

// What an instruction is compiled as, and what it does to the flags.
enum class Form : uint8_t {
    Handler,
    Nop,
    MovRR, // 88/89/8A/8B mod 3
    MovRImm, // B0-BF, C6/C7 mod 3
    AluRR, // 00-3B mod 3, 84/85
    AluRImm, // 80/81/83 mod 3, 04-3D acc, A8/A9, F6/F7 /0
    Lea,
    Movx, // MOVZX/MOVSX/MOVSXD mod 3
    IncDec, // FE/FF /0 /1 mod 3
    NotNeg, // F6/F7 /2 /3 mod 3
    Shift, // C0/C1/D0/D1/D2/D3 mod 3
    Imul, // 0F AF, 69, 6B mod 3
    Cmov, // 0F 40-4F mod 3
    Setcc, // 0F 90-9F mod 3
    Bswap,
    Jcc,
    Jmp,
    MovLoad, // 8A/8B memory
    MovStore, // 88/89 memory
    MovStoreImm, // C6/C7 memory
    AluLoad, // op r, [m]
    AluStore, // op [m], r / imm (RMW; CMP/TEST only read)
    MovxLoad,
    Push,
    Pop,
    Call,
    Ret,
    JmpInd, // FF /4 register
    CallInd, // FF /2 register
};

struct Plan {
    Form form = Form::Handler;
    uint8_t op = 0; // ALU op 0-7 (8: TEST), shift kind, or condition code
    uint8_t size = 0; // operand size
    uint8_t src_size = 0; // MOVX source size
    bool sign = false; // MOVSX
    bool imm = false; // the source is the immediate
    bool acc = false; // accumulator form (destination RAX)
    bool reads_flags = false; // the result depends on them (Jcc, ADC, RCL...)
    bool keeps_flags = false; // sets some, keeps the others (INC/DEC, rotates, shifts by CL)
    bool writes_flags = false; // all six arithmetic flags
    bool observes = false; // may fault, call out or leave the block: flags must be in RFLAGS
};

// The plan for `d` (64-bit code). Without `flags_ok` (no way to clear the
// lazy-flags record from generated code) nothing that sets flags is inlined.
Plan plan_instruction(const DecodedInsn& d, bool flags_ok);

inline bool canonical(uint64_t v) { return uint64_t(int64_t(v << 16) >> 16) == v; }

} // namespace kiln::accel::interp::jit
