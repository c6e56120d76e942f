// Operand access for the specialised block handlers (exec_fast.cpp,
// exec_fused.cpp): sizes and register/memory forms as template arguments,
// so each instantiation is straight-line code.
#pragma once

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp::fast {

template <unsigned S>
constexpr uint64_t mask_of()
{
    return S == 8 ? ~0ull : (1ull << (S * 8)) - 1;
}

template <unsigned S>
[[gnu::always_inline]] inline uint64_t get_r(InterpreterImpl& cpu, unsigned r)
{
    if constexpr (S == 8)
        return cpu.state().gpr[r];
    else if constexpr (S == 4)
        return uint32_t(cpu.state().gpr[r]);
    else
        return cpu.reg(r, S); // AH..BH without REX, 16-bit merge
}

template <unsigned S>
[[gnu::always_inline]] inline void set_r(InterpreterImpl& cpu, unsigned r, uint64_t v)
{
    if constexpr (S == 8)
        cpu.state().gpr[r] = v;
    else if constexpr (S == 4)
        cpu.state().gpr[r] = uint32_t(v);
    else
        cpu.set_reg(r, S, v);
}

template <unsigned S, bool Mem>
[[gnu::always_inline]] inline uint64_t get_rm(InterpreterImpl& cpu, const DecodedInsn& d)
{
    if constexpr (Mem)
        return cpu.read_mem(cpu.operand_seg(d), cpu.effective_address(d), S);
    else
        return get_r<S>(cpu, d.rm);
}

template <unsigned S, bool Mem>
[[gnu::always_inline]] inline void set_rm(InterpreterImpl& cpu, const DecodedInsn& d, uint64_t v)
{
    if constexpr (Mem)
        cpu.write_mem(cpu.operand_seg(d), cpu.effective_address(d), S, v);
    else
        set_r<S>(cpu, d.rm, v);
}

} // namespace kiln::accel::interp::fast
