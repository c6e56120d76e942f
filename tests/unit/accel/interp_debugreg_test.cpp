// Debug-register breakpoints: an instruction breakpoint faults before the
// instruction (and RF suppresses it once), a write breakpoint traps after
// the writing instruction and ignores reads, DR6 names the breakpoint.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_code = 0x400000;
constexpr uint64_t k_stack = 0x480000;

// A CPU at CPL 0 in long mode about to run k_program from `rip`.
std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host, uint64_t rip);

uint64_t read64(FakeHost& host, uint64_t gpa)
{
    uint64_t v;
    std::memcpy(&v, host.ram(gpa), 8);
    return v;
}

// nop; mov eax, [0x500008]; mov [0x500008], ebx; nop; hlt
const std::vector<uint8_t> k_program = {
    0x90, // +0
    0x8b, 0x04, 0x25, 0x08, 0x00, 0x50, 0x00, // +1: mov eax, [0x500008]
    0x89, 0x1c, 0x25, 0x08, 0x00, 0x50, 0x00, // +8: mov [0x500008], ebx
    0x90, // +15
    0xf4, // +16
};

std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host, uint64_t rip)
{
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    setup_long_mode(*cpu.value(), host, 0);
    host.write(k_code, k_program);
    cpu.value()->state().rip = rip;
    cpu.value()->state().gpr[x86::k_rsp] = k_stack;
    return std::move(cpu).value();
}

} // namespace

TEST(InterpDebugRegs, InstructionBreakpointFaultsBeforeTheInstruction)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host, k_code);
    x86::CpuState& s = cpu->state();
    s.dr[0] = k_code + 8; // the store
    s.dr[7] = 0x401; // L0, execute
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 1);
    EXPECT_EQ(s.dr[6] & 0xf, 1u);
    EXPECT_EQ(read64(host, k_stack - 40), k_code + 8); // the frame's RIP: not executed yet
    EXPECT_EQ(read64(host, 0x500008) & 0xffffffff, 0u);
}

TEST(InterpDebugRegs, ResumeFlagSuppressesTheBreakpointOnce)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host, k_code + 8);
    x86::CpuState& s = cpu->state();
    s.gpr[x86::k_rbx] = 0x1234;
    s.rflags |= x86::k_flag_rf; // as IRET from the #DB handler leaves it
    s.dr[0] = k_code + 8;
    s.dr[7] = 0x401;
    cpu->run(3);
    EXPECT_EQ(delivered_vector(s), -1);
    EXPECT_EQ(read64(host, 0x500008) & 0xffffffff, 0x1234u);
    EXPECT_FALSE(s.rflags & x86::k_flag_rf); // cleared after one instruction
}

TEST(InterpDebugRegs, WriteBreakpointTrapsAfterTheStoreOnly)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host, k_code);
    x86::CpuState& s = cpu->state();
    s.gpr[x86::k_rbx] = 0x5678;
    s.dr[1] = 0x50000a; // inside the dword, 4-byte breakpoint: aligned down
    s.dr[7] = 0x400 | (1u << 2) | (1u << 20) | (3u << 22); // L1, write, 4 bytes
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 1);
    EXPECT_EQ(s.dr[6] & 0xf, 2u);
    EXPECT_EQ(read64(host, k_stack - 40), k_code + 15); // trap: after the store
    EXPECT_EQ(read64(host, 0x500008) & 0xffffffff, 0x5678u);
}

TEST(InterpDebugRegs, ReadWriteBreakpointTrapsOnTheLoad)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host, k_code);
    x86::CpuState& s = cpu->state();
    // Armed by the guest itself: MOV to DR7 at CPL 0 takes effect at once.
    s.dr[2] = 0x500008;
    host.write(0x400100, { 0xb8, 0, 0, 0, 0, // mov eax, dr7 value
                             0x0f, 0x23, 0xf8, // mov dr7, rax
                             0xe9, 0xf3, 0xfe, 0xff, 0xff }); // jmp k_code
    // L2 (bit 4), RW2 = 11 read/write (bits 24-25), LEN2 = 11 4 bytes (bits 26-27).
    const uint32_t dr7 = 0x0f000410;
    std::memcpy(host.ram(0x400101), &dr7, 4);
    s.rip = 0x400100;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 1);
    EXPECT_EQ(s.dr[6] & 0xf, 4u);
    EXPECT_EQ(read64(host, k_stack - 40), k_code + 8); // after the load
}

TEST(InterpDebugRegs, IoBreakpointTrapsAfterPortAccessWithCr4De)
{
    FakeHost host(16ull << 20);
    // out 0x80, al; in al, dx; nop; hlt
    const std::vector<uint8_t> io = { 0xe6, 0x80, 0xec, 0x90, 0xf4 };
    const uint64_t at = k_code + 0x100;
    for (bool de : { true, false }) {
        auto cpu = make_cpu(host, at);
        host.write(at, io);
        cpu->invalidate_code(at, io.size());
        x86::CpuState& s = cpu->state();
        if (de)
            s.cr4 |= x86::k_cr4_de;
        s.gpr[x86::k_rdx] = 0x3fa;
        s.dr[0] = 0x80; // 1 byte at port 0x80
        s.dr[1] = 0x3f8; // 4 bytes at 0x3f8..0x3fb
        s.dr[7] = 0x401 | 0x4 | (0x2u << 16) | (0xeu << 20); // L0, L1; RW0 = RW1 = I/O, LEN1 = 4
        cpu->run(10);
        if (!de) { // RW = 10 means nothing without CR4.DE
            EXPECT_EQ(delivered_vector(s), -1);
            EXPECT_TRUE(s.halted);
            continue;
        }
        EXPECT_EQ(delivered_vector(s), 1);
        EXPECT_EQ(s.dr[6] & 0xf, 1u);
        EXPECT_EQ(read64(host, k_stack - 40), at + 2); // a trap: after the OUT
        EXPECT_EQ(host.pio_writes.size(), 1u);
        // Resume at the IN: breakpoint 1 (0x3fa is inside 0x3f8..0x3fb).
        s.halted = false;
        s.rip = at + 2;
        s.gpr[x86::k_rsp] = k_stack;
        cpu->run(10);
        EXPECT_EQ(delivered_vector(s), 1);
        EXPECT_EQ(s.dr[6] & 0xf, 2u);
        EXPECT_EQ(read64(host, k_stack - 40), at + 3);
        host.pio_writes.clear();
    }
}
