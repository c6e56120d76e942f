// The JIT tier (accel/interp/jit) against the block interpreter on hot
// loops: the same final state, instruction counts and faults with the JIT
// on and off; self-modifying code and DMA into compiled code; exact budget
// accounting; a fault inside a compiled block reported at its instruction.
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
constexpr uint64_t k_data = 0x600000;

// clang-format off

// A loop of ALU, memory, stack, CALL/RET, flag-reading and partial-flag
// instructions (tests/unit/accel/interp_jit_test.cpp's comments give the source).
const uint8_t k_loop[] = {
    0x48, 0xc7, 0xc1, 0xe8, 0x03, 0x00, 0x00, 0x31, 0xc0, 0x48, 0xc7, 0xc6, 0x00, 0x00, 0x60, 0x00, 0x48, 0xc7, 0xc4,
    0x00, 0x00, 0x80, 0x00, 0x48, 0x01, 0xc8, 0x48, 0x6b, 0xd0, 0x03, 0x48, 0x89, 0x14, 0xce, 0x48, 0x03, 0x54, 0xce,
    0xf8, 0x44, 0x0f, 0xb6, 0x44, 0xce, 0x01, 0x4c, 0x0f, 0xbf, 0x4c, 0xce, 0x02, 0x4f, 0x8d, 0x54, 0x88, 0x07, 0x41,
    0x83, 0xea, 0x05, 0x49, 0xc1, 0xe2, 0x03, 0x49, 0xc1, 0xf9, 0x02, 0x41, 0xf6, 0xc2, 0x04, 0x0f, 0x95, 0xc3, 0x52,
    0xe8, 0x20, 0x00, 0x00, 0x00, 0x5a, 0x49, 0x31, 0xd3, 0x4d, 0x11, 0xdc, 0x66, 0x41, 0xc1, 0xc4, 0x03, 0x41, 0xff,
    0xc5, 0x41, 0x81, 0xfd, 0x88, 0x13, 0x00, 0x00, 0x4d, 0x0f, 0x4c, 0xf4, 0x48, 0xff, 0xc9, 0x75, 0xa7, 0xf4, 0x48,
    0xc1, 0xca, 0x07, 0x48, 0x31, 0xd0, 0x0f, 0x92, 0xc3, 0x48, 0x0f, 0x48, 0xfa, 0x80, 0xa6, 0x00, 0x01, 0x00, 0x00,
    0x7f, 0x48, 0x09, 0x96, 0x08, 0x01, 0x00, 0x00, 0x49, 0xf7, 0xdf, 0x41, 0xf7, 0xd7, 0x49, 0x0f, 0xcf, 0xc3,
};
// rcx = 100; rbx = 0; rdi = &imm; loop: mov eax, imm(1); add rbx, rax;
// at rcx == 50 the loop patches its own immediate to 2; dec rcx; jnz; hlt.
const uint8_t k_smc[] = {
    0x48, 0xc7, 0xc1, 0x64, 0x00, 0x00, 0x00, 0x31, 0xdb, 0x48, 0x8d, 0x3d, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x01, 0x00,
    0x00, 0x00, 0x48, 0x01, 0xc3, 0x48, 0x83, 0xf9, 0x32, 0x75, 0x03, 0xc6, 0x07, 0x02, 0x48, 0xff, 0xc9, 0x75, 0xea,
    0xf4,
};
// rdi = 0x5ffc00; rax = 0; loop: mov [rdi], rax; add rdi, 8; inc rax; jmp loop
// (the 2 MiB page at 0x600000 is made not present: #PF after 128 stores).
const uint8_t k_fault[] = {
    0x48, 0xc7, 0xc7, 0x00, 0xfc, 0x5f, 0x00, 0x31, 0xc0, 0x48, 0x89, 0x07, 0x48, 0x83, 0xc7, 0x08, 0x48, 0xff, 0xc0,
    0xeb, 0xf4,
};

// ecx = 100000; loop: add rax, rcx; xor rdx, rax; dec ecx; jnz loop; hlt
// (a block that branches to its own start: it loops inside compiled code).
const uint8_t k_self_loop[] = {
    0xb9, 0xa0, 0x86, 0x01, 0x00, 0x48, 0x01, 0xc8, 0x48, 0x31, 0xc2, 0xff, 0xc9, 0x75, 0xf6, 0xf4,
};

// ecx = 200; rbx = &f; rbp = &back; loop: call rbx; jmp rbp; back: dec ecx;
// jnz loop; rdx = 0x8000000000000000; call rdx (#GP); hlt; f: add rax, rcx; ret
const uint8_t k_indirect[] = {
    0xb9, 0xc8, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x1d, 0x1c, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x2d, 0x04, 0x00, 0x00, 0x00,
    0xff, 0xd3, 0xff, 0xe5, 0xff, 0xc9, 0x75, 0xf8, 0x48, 0xba, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xff,
    0xd2, 0xf4, 0x48, 0x01, 0xc8, 0xc3,
};
// clang-format on

struct Vm {
    FakeHost host { 16ull << 20 };
    std::unique_ptr<interp::Interpreter> cpu;

    Vm(bool jit, const uint8_t* code, size_t len)
    {
        auto model = x86::CpuModel::by_name("max");
        EXPECT_TRUE(model.ok());
        cpu = std::move(interp::Interpreter::create(host, model.value())).value();
        EXPECT_TRUE(cpu->set_jit(jit, jit ? 4 : 0).ok());
        setup_long_mode(*cpu, host, 0);
        std::memcpy(host.ram(k_code), code, len);
        cpu->state().rip = k_code;
        cpu->state().gpr[x86::k_rsp] = 0x800000;
    }
};

void expect_same(Vm& a, Vm& b)
{
    const x86::CpuState &x = a.cpu->state(), &y = b.cpu->state();
    for (unsigned r = 0; r < 16; r++)
        EXPECT_EQ(x.gpr[r], y.gpr[r]) << "gpr " << r;
    EXPECT_EQ(x.rip, y.rip);
    EXPECT_EQ(x.rflags, y.rflags);
    EXPECT_EQ(x.cr2, y.cr2);
    EXPECT_EQ(a.cpu->instructions_retired(), b.cpu->instructions_retired());
    EXPECT_EQ(std::memcmp(a.host.ram(k_data), b.host.ram(k_data), 0x2000), 0);
    EXPECT_EQ(std::memcmp(a.host.ram(0x7ff000), b.host.ram(0x7ff000), 0x1000), 0);
}

} // namespace

TEST(InterpJit, HotLoopMatchesTheInterpreter)
{
    Vm jit(true, k_loop, sizeof k_loop), interp(false, k_loop, sizeof k_loop);
    EXPECT_EQ(jit.cpu->run(10'000'000), interp::RunExit::Stopped);
    EXPECT_EQ(interp.cpu->run(10'000'000), interp::RunExit::Stopped);
    EXPECT_GE(jit.cpu->jit_blocks_compiled(), 2u);
    EXPECT_EQ(interp.cpu->jit_blocks_compiled(), 0u);
    EXPECT_EQ(jit.cpu->state().gpr[x86::k_rcx], 0u);
    EXPECT_EQ(jit.cpu->state().gpr[x86::k_r13], 1000u);
    expect_same(jit, interp);
}

TEST(InterpJit, BudgetIsExact)
{
    // Stop in the middle of the loop, several times: the compiled blocks
    // must stop exactly at the budget as the interpreter does.
    Vm jit(true, k_loop, sizeof k_loop), interp(false, k_loop, sizeof k_loop);
    for (uint64_t budget : { 777u, 1234u, 5000u, 1u, 3u, 10007u }) {
        uint64_t before = jit.cpu->instructions_retired();
        EXPECT_EQ(jit.cpu->run(budget), interp::RunExit::Budget);
        EXPECT_EQ(jit.cpu->instructions_retired() - before, budget);
        EXPECT_EQ(interp.cpu->run(budget), interp::RunExit::Budget);
        expect_same(jit, interp);
    }
    EXPECT_GT(jit.cpu->jit_blocks_compiled(), 0u);
}

TEST(InterpJit, SelfLoopStopsAtTheBudgetAndOnKicks)
{
    Vm jit(true, k_self_loop, sizeof k_self_loop), interp(false, k_self_loop, sizeof k_self_loop);
    for (uint64_t budget : { 50u, 7u, 1001u, 4u, 30000u, 2u }) {
        uint64_t before = jit.cpu->instructions_retired();
        EXPECT_EQ(jit.cpu->run(budget), interp::RunExit::Budget);
        EXPECT_EQ(jit.cpu->instructions_retired() - before, budget);
        EXPECT_EQ(interp.cpu->run(budget), interp::RunExit::Budget);
        expect_same(jit, interp);
    }
    // A pending kick stops the loop at once (at the next pass).
    jit.cpu->kick();
    uint64_t before = jit.cpu->instructions_retired();
    EXPECT_EQ(jit.cpu->run(1'000'000), interp::RunExit::Kicked);
    EXPECT_LT(jit.cpu->instructions_retired() - before, 10u);
    EXPECT_EQ(jit.cpu->run(10'000'000), interp::RunExit::Stopped);
    EXPECT_EQ(interp.cpu->run(10'000'000), interp::RunExit::Stopped);
    EXPECT_EQ(jit.cpu->state().gpr[x86::k_rcx], 0u);
    expect_same(jit, interp);
}

TEST(InterpJit, IndirectCallsAndJumps)
{
    Vm jit(true, k_indirect, sizeof k_indirect), interp(false, k_indirect, sizeof k_indirect);
    EXPECT_EQ(jit.cpu->run(100000), interp::RunExit::Stopped);
    EXPECT_EQ(interp.cpu->run(100000), interp::RunExit::Stopped);
    EXPECT_EQ(jit.cpu->state().gpr[x86::k_rax], 200u * 201 / 2);
    EXPECT_EQ(delivered_vector(jit.cpu->state()), 13); // CALL to a non-canonical address
    EXPECT_GT(jit.cpu->jit_blocks_compiled(), 2u);
    expect_same(jit, interp);
}

TEST(InterpJit, SelfModifyingCodeInACompiledBlock)
{
    Vm jit(true, k_smc, sizeof k_smc), interp(false, k_smc, sizeof k_smc);
    EXPECT_EQ(jit.cpu->run(100000), interp::RunExit::Stopped);
    EXPECT_EQ(interp.cpu->run(100000), interp::RunExit::Stopped);
    // 51 iterations add 1 (the patch lands after the add), 49 add 2.
    EXPECT_EQ(jit.cpu->state().gpr[x86::k_rbx], 149u);
    EXPECT_GT(jit.cpu->jit_blocks_compiled(), 1u); // before and after the patch
    expect_same(jit, interp);
}

TEST(InterpJit, DmaIntoCompiledCode)
{
    Vm vm(true, k_smc, sizeof k_smc);
    EXPECT_EQ(vm.cpu->run(100000), interp::RunExit::Stopped);
    const uint64_t compiled = vm.cpu->jit_blocks_compiled();
    EXPECT_GT(compiled, 0u);
    // Behind the CPU's back (as a device's DMA would): the immediate
    // becomes 3 and the patching store is replaced by NOPs.
    vm.host.ram(k_code + 0x11)[0] = 3;
    std::memset(vm.host.ram(k_code + 0x1e), 0x90, 3);
    vm.cpu->invalidate_code(k_code, 0x40);
    vm.cpu->state() = {};
    setup_long_mode(*vm.cpu, vm.host, 0);
    vm.cpu->state().rip = k_code;
    EXPECT_EQ(vm.cpu->run(100000), interp::RunExit::Stopped);
    EXPECT_EQ(vm.cpu->state().gpr[x86::k_rbx], 300u);
    EXPECT_GT(vm.cpu->jit_blocks_compiled(), compiled);
}

TEST(InterpJit, FaultInACompiledBlockIsPrecise)
{
    Vm jit(true, k_fault, sizeof k_fault), interp(false, k_fault, sizeof k_fault);
    for (Vm* vm : { &jit, &interp }) {
        uint64_t not_present = 0;
        std::memcpy(vm->host.ram(k_pml4 + 0x2000 + 3 * 8), &not_present, 8); // 0x600000-0x7fffff
        vm->cpu->state().gpr[x86::k_rsp] = 0x300000; // the exception frame goes here
        EXPECT_EQ(vm->cpu->run(100000), interp::RunExit::Stopped);
        const x86::CpuState& s = vm->cpu->state();
        EXPECT_EQ(delivered_vector(s), 14);
        EXPECT_EQ(s.cr2, 0x600000u);
        EXPECT_EQ(s.gpr[x86::k_rax], 128u); // the 129th store faulted
        EXPECT_EQ(s.gpr[x86::k_rdi], 0x600000u);
        uint64_t frame[2]; // error code, RIP
        std::memcpy(frame, vm->host.ram(s.gpr[x86::k_rsp]), sizeof frame);
        EXPECT_EQ(frame[1], k_code + 9); // the store
        EXPECT_EQ(frame[0], 2u); // write, not present, supervisor
    }
    EXPECT_GT(jit.cpu->jit_blocks_compiled(), 0u);
    expect_same(jit, interp);
}
