// x87 pieces outside exec_x87.cpp (exec_x87_host.cpp): the transcendental
// and other register-only instructions run on the host FPU, and the
// environment and full-state images (FNSTENV/FLDENV, FNSAVE/FRSTOR).
#pragma once

#include <cstdint>
#include <cstring>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

// D9 F0-FF instructions that run on the host FPU with the whole guest x87
// state loaded (F2XM1, FYL2X, FPTAN, FPATAN, FXTRACT, FYL2XP1, FSINCOS,
// FSIN, FCOS): results, C0-C3, TOP, tags and stack faults are the host
// CPU's. False if `modrm` is not one of them.
bool x87_host_instruction(x86::FxsaveArea& f, uint8_t modrm);

// The 14/28-byte environment (protected-mode layout) and the 94/108-byte
// FNSAVE image; `opsize` is the instruction's operand size (2 or 4).
void x87_store_env(InterpreterImpl& cpu, x86::Seg seg, uint64_t ea, unsigned opsize);
void x87_load_env(InterpreterImpl& cpu, x86::Seg seg, uint64_t ea, unsigned opsize);
void x87_fnsave(InterpreterImpl& cpu, x86::Seg seg, uint64_t ea, unsigned opsize);
void x87_frstor(InterpreterImpl& cpu, x86::Seg seg, uint64_t ea, unsigned opsize);

// A control word as FLDCW/FLDENV load it: reserved bits 7 and 13-15
// read as 0, bit 6 as 1.
inline uint16_t x87_control_word(uint16_t v) { return uint16_t((v & 0x1f3f) | 0x40); }
// A status word loaded from memory (FXRSTOR/XRSTOR): ES and B follow the
// pending exceptions that the control word leaves unmasked, as the host
// CPU recomputes them.
inline uint16_t x87_status_summary(uint16_t fsw, uint16_t fcw)
{
    bool pending = fsw & ~fcw & 0x3f;
    return uint16_t((fsw & ~0x8080) | (pending ? 0x8080 : 0));
}

// The x87 part of an FXSAVE image (FCW..FDP, ST0-7) as FXRSTOR and
// XRSTOR load it.
inline void x87_load_image(x86::FxsaveArea& fpu, const x86::FxsaveArea& img)
{
    fpu.fcw = x87_control_word(img.fcw);
    fpu.fsw = x87_status_summary(img.fsw, fpu.fcw);
    fpu.ftw = img.ftw;
    fpu.fop = img.fop;
    fpu.fip = img.fip;
    fpu.fdp = img.fdp;
    std::memcpy(fpu.st, img.st, sizeof fpu.st);
}

// A waiting x87 or MMX instruction finds an unmasked exception pending
// (FSW.ES) from an earlier one: #MF, the native reporting with CR0.NE.
// (CR0.NE clear would signal FERR# to the interrupt controller, which no
// board wires up: the exception stays pending instead.)
inline void x87_check_pending(InterpreterImpl& cpu)
{
    const x86::CpuState& s = cpu.state();
    if ((s.fpu.fsw & 0x80) && (s.cr0 & x86::k_cr0_ne))
        cpu.raise(k_mf);
}

// FNINIT's state (TOP = 0 keeps the physical registers where they are).
void x87_init(x86::FxsaveArea& f);

} // namespace kiln::accel::interp
