// Far transfers through system descriptors (gates.cpp): call gates (16-,
// 32- and 64-bit), task gates and TSS descriptors, and the hardware task
// switch they (and IDT task gates, and IRET with NT set) perform.
#pragma once

#include <cstdint>

#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

enum class TaskSwitchReason { Jump, Call, Iret, Interrupt };

// Far JMP/CALL whose selector names a system descriptor `desc`.
void far_transfer_system(
    InterpreterImpl& cpu, uint16_t selector, uint64_t desc, bool is_call, unsigned opsize, uint64_t next_rip);

// Switches to the task whose (available, or busy for IRET) TSS descriptor
// is `desc`. `return_rip` is the EIP saved in the old task; an error code,
// if any, is pushed on the new task's stack. Legacy protected mode only.
void task_switch(InterpreterImpl& cpu, uint16_t selector, uint64_t desc, TaskSwitchReason why, uint64_t return_rip,
    bool has_error = false, uint32_t error = 0);

// Interrupt or exception through an IDT task gate.
void task_gate_event(InterpreterImpl& cpu, uint64_t gate, uint32_t gate_error, uint64_t return_rip, bool has_error,
    uint32_t error);

// IRET with EFLAGS.NT set: back to the task in the current TSS's link field.
void task_return(InterpreterImpl& cpu, uint64_t next_rip);

} // namespace kiln::accel::interp
