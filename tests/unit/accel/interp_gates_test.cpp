// Call gates and hardware task switching on tiny hand-assembled payloads:
// a CPL 3 -> 0 call through a 32-bit gate with a parameter and a stack
// switch, a 64-bit call gate in long mode, task switches by CALL to a TSS,
// IRET with NT back, INT and a #GP through IDT task gates, and JMP between
// tasks.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_gdt32 = 0x1000;
constexpr uint64_t k_idt32 = 0x2000;
constexpr uint64_t k_tss_a = 0x3000;
constexpr uint64_t k_tss_b = 0x3100;

constexpr uint16_t k_code0 = 0x08, k_data0 = 0x10, k_code3 = 0x1b, k_data3 = 0x23, k_tss_a_sel = 0x28,
                   k_call_gate = 0x33, k_tss_b_sel = 0x38, k_task_gate = 0x40;

void put32(FakeHost& h, uint64_t gpa, uint32_t v) { std::memcpy(h.ram(gpa), &v, 4); }
void put64(FakeHost& h, uint64_t gpa, uint64_t v) { std::memcpy(h.ram(gpa), &v, 8); }
uint32_t get32(FakeHost& h, uint64_t gpa)
{
    uint32_t v;
    std::memcpy(&v, h.ram(gpa), 4);
    return v;
}

uint64_t tss_descriptor(uint64_t base, bool busy)
{
    return 0x67 | ((base & 0xffffff) << 16) | (uint64_t(busy ? 0x8b : 0x89) << 40) | ((base >> 24) << 56);
}

std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host)
{
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    return std::move(cpu).value();
}

x86::SegmentCache flat(uint16_t sel, uint16_t attr) { return { sel, attr, 0xffffffff, 0 }; }

// 32-bit protected mode, no paging, running in task A at CPL `cpl`.
void setup_protected(interp::Interpreter& cpu, FakeHost& host, unsigned cpl)
{
    put64(host, k_gdt32 + 0x00, 0);
    put64(host, k_gdt32 + 0x08, 0x00cf9b000000ffffull);
    put64(host, k_gdt32 + 0x10, 0x00cf93000000ffffull);
    put64(host, k_gdt32 + 0x18, 0x00cffb000000ffffull);
    put64(host, k_gdt32 + 0x20, 0x00cff3000000ffffull);
    put64(host, k_gdt32 + 0x28, tss_descriptor(k_tss_a, true));
    // 32-bit call gate, DPL 3, one dword parameter, to 0008:00005000.
    put64(host, k_gdt32 + 0x30, 0x0000ec0100085000ull);
    put64(host, k_gdt32 + 0x38, tss_descriptor(k_tss_b, false));
    // Task gate to TSS B (also in the IDT below).
    put64(host, k_gdt32 + 0x40, 0x0000850000380000ull);
    std::memset(host.ram(k_tss_a), 0, 0x68);
    put32(host, k_tss_a + 4, 0x9000); // ESP0
    put32(host, k_tss_a + 8, k_data0); // SS0
    put64(host, k_idt32 + 0x40 * 8, 0x0000850000380000ull);

    x86::CpuState& s = cpu.state();
    s.cr0 = x86::k_cr0_pe | x86::k_cr0_et;
    s.gdtr = { k_gdt32, 0x47 };
    s.idtr = { k_idt32, 0x41 * 8 - 1 };
    s.tr = { k_tss_a_sel, 0x8b, 0x67, k_tss_a };
    s.ldtr = {};
    s.segment(x86::Seg::CS) = flat(cpl ? k_code3 : k_code0, cpl ? 0xc0fb : 0xc09b);
    for (x86::Seg sg : { x86::Seg::SS, x86::Seg::DS, x86::Seg::ES, x86::Seg::FS, x86::Seg::GS })
        s.segment(sg) = flat(cpl ? k_data3 : k_data0, cpl ? 0xc0f3 : 0xc093);
    s.rflags = 0x2;
    s.rip = 0x4000;
    s.gpr[x86::k_rsp] = 0x8000;
}

// Task B: CPL 0, code at 0x6000, stack at 0x7000, EAX = 0xb0b.
void setup_task_b(FakeHost& host)
{
    std::memset(host.ram(k_tss_b), 0, 0x68);
    put32(host, k_tss_b + 0x20, 0x6000); // EIP
    put32(host, k_tss_b + 0x24, 0x2); // EFLAGS
    put32(host, k_tss_b + 0x28, 0xb0b); // EAX
    put32(host, k_tss_b + 0x38, 0x7000); // ESP
    const uint16_t segs[6] = { k_data0, k_code0, k_data0, k_data0, 0, 0 };
    for (unsigned i = 0; i < 6; i++)
        put32(host, k_tss_b + 0x48 + 4 * i, segs[i]);
}

} // namespace

TEST(InterpGates, CallGateToInnerLevelCopiesParameterAndReturns)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 3);
    host.write(0x4000, {
                           0x68, 0x34, 0x12, 0x00, 0x00, // push 0x1234
                           0x9a, 0x00, 0x00, 0x00, 0x00, 0x33, 0x00, // call far 0033:0 (the gate)
                           0x89, 0xc3, // mov ebx, eax
                           0xeb, 0xfe, // jmp $
                       });
    host.write(0x5000, {
                           0x8b, 0x44, 0x24, 0x08, // mov eax, [esp+8]: the copied parameter
                           0x8c, 0xc9, // mov ecx, cs
                           0x8c, 0xd2, // mov edx, ss
                           0x89, 0xe6, // mov esi, esp
                           0xca, 0x04, 0x00, // retf 4
                       });
    cpu->run(20);
    const x86::CpuState& s = cpu->state();
    EXPECT_EQ(host.resets, 0);
    EXPECT_EQ(s.gpr[x86::k_rbx], 0x1234u);
    EXPECT_EQ(s.gpr[x86::k_rcx] & 0xffff, k_code0);
    EXPECT_EQ(s.gpr[x86::k_rdx] & 0xffff, k_data0);
    EXPECT_EQ(s.gpr[x86::k_rsi], 0x9000u - 20); // SS, ESP, 1 parameter, CS, EIP
    // The inner stack: return EIP, CS, parameter, old ESP, old SS.
    EXPECT_EQ(get32(host, 0x9000 - 20), 0x400cu);
    EXPECT_EQ(get32(host, 0x9000 - 16), k_code3);
    EXPECT_EQ(get32(host, 0x9000 - 12), 0x1234u);
    EXPECT_EQ(get32(host, 0x9000 - 8), 0x8000u - 4);
    EXPECT_EQ(get32(host, 0x9000 - 4), k_data3);
    // Back at CPL 3 on the outer stack, the parameter popped by RETF 4.
    EXPECT_EQ(s.segment(x86::Seg::CS).selector, k_code3);
    EXPECT_EQ(s.segment(x86::Seg::SS).selector, k_data3);
    EXPECT_EQ(s.gpr[x86::k_rsp], 0x8000u);
    EXPECT_EQ(s.rip, 0x400eu);
}

TEST(InterpGates, CallGateChecksPrivilege)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 3);
    // Gate DPL 0: a CPL 3 call through it is #GP(gate selector); the IDT
    // has no #GP entry, so that escalates to a triple fault.
    put64(host, k_gdt32 + 0x30, 0x00008c0100085000ull);
    host.write(0x4000, { 0x9a, 0x00, 0x00, 0x00, 0x00, 0x33, 0x00 });
    EXPECT_EQ(cpu->run(20), interp::RunExit::Reset);
    EXPECT_EQ(host.resets, 1);
}

TEST(InterpGates, TaskSwitchByCallIretAndTaskGate)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 0);
    // Task B: its own registers and code at 0x6000.
    setup_task_b(host);
    host.write(0x6000, {
                           0xb9, 0x22, 0x00, 0x00, 0x00, // mov ecx, 0x22
                           0x89, 0xc7, // mov edi, eax (B's EAX)
                           0xcf, // iret: NT is set, back to A
                           0xb9, 0x33, 0x00, 0x00, 0x00, // mov ecx, 0x33
                           0xcf, // iret
                       });
    host.write(0x4000, {
                           0xba, 0x11, 0x00, 0x00, 0x00, // mov edx, 0x11
                           0x9a, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, // call far 0038:0 (TSS B)
                           0x89, 0xc6, // mov esi, eax
                           0xcd, 0x40, // int 0x40: task gate to B
                           0xeb, 0xfe, // jmp $
                       });
    x86::CpuState& s = cpu->state();
    s.gpr[x86::k_rax] = 0xaaaa;
    s.gpr[x86::k_rcx] = 0xcccc;
    cpu->run(40);
    EXPECT_EQ(host.resets, 0);
    // Back in task A with its own registers.
    EXPECT_EQ(s.tr.selector, k_tss_a_sel);
    EXPECT_EQ(s.rip, 0x4010u);
    EXPECT_EQ(s.gpr[x86::k_rax], 0xaaaau);
    EXPECT_EQ(s.gpr[x86::k_rsi], 0xaaaau);
    EXPECT_EQ(s.gpr[x86::k_rcx], 0xccccu);
    EXPECT_EQ(s.gpr[x86::k_rdx], 0x11u);
    EXPECT_EQ(s.gpr[x86::k_rsp], 0x8000u);
    EXPECT_FALSE(s.rflags & x86::k_flag_nt);
    EXPECT_TRUE(s.cr0 & x86::k_cr0_ts);
    // Task B ran twice: its TSS holds what it left, with A as back link.
    EXPECT_EQ(get32(host, k_tss_b + 0x2c), 0x33u); // ECX
    EXPECT_EQ(get32(host, k_tss_b + 0x44), 0xb0bu); // EDI = B's EAX
    EXPECT_EQ(get32(host, k_tss_b + 0x20), 0x600eu); // EIP after the second IRET
    EXPECT_EQ(get32(host, k_tss_b) & 0xffff, k_tss_a_sel);
    EXPECT_FALSE(get32(host, k_tss_b + 0x24) & x86::k_flag_nt);
    // Busy bits: A busy, B available again.
    EXPECT_EQ((get32(host, k_gdt32 + 0x28 + 4) >> 8) & 0xf, 0xbu);
    EXPECT_EQ((get32(host, k_gdt32 + 0x38 + 4) >> 8) & 0xf, 0x9u);
}

TEST(InterpGates, JumpToTssAndBack)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 0);
    setup_task_b(host);
    host.write(0x6000, {
                           0xbb, 0x55, 0x00, 0x00, 0x00, // mov ebx, 0x55
                           0xea, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, // jmp far 0028:0 (TSS A)
                       });
    host.write(0x4000, {
                           0xea, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, // jmp far 0040:0 (task gate to B)
                           0xeb, 0xfe, // jmp $
                       });
    cpu->run(20);
    const x86::CpuState& s = cpu->state();
    EXPECT_EQ(host.resets, 0);
    EXPECT_EQ(s.tr.selector, k_tss_a_sel);
    EXPECT_EQ(s.rip, 0x4007u);
    EXPECT_EQ(get32(host, k_tss_b + 0x34), 0x55u); // B's EBX, saved by its JMP
    EXPECT_EQ(get32(host, k_tss_b) & 0xffff, 0u); // JMP leaves no back link
    EXPECT_FALSE(s.rflags & x86::k_flag_nt);
    EXPECT_EQ((get32(host, k_gdt32 + 0x28 + 4) >> 8) & 0xf, 0xbu);
    EXPECT_EQ((get32(host, k_gdt32 + 0x38 + 4) >> 8) & 0xf, 0x9u);
}

TEST(InterpGates, LongModeCallGate)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 3);
    // 16-byte 64-bit call gate at GDT 0x50, DPL 3, to 0010:0000000000005000.
    put64(host, k_gdt + 0x50, 0x0000ec0000105000ull);
    put64(host, k_gdt + 0x58, 0);
    cpu->state().gdtr.limit = 0x5f;
    // m16:32 far pointer for the indirect call: offset ignored, selector 0x53.
    put32(host, 0x410000, 0);
    put32(host, 0x410004, 0x53);
    host.write(0x400000, {
                             0xff, 0x1c, 0x25, 0x00, 0x00, 0x41, 0x00, // call far [0x410000]
                             0x48, 0x89, 0xc3, // mov rbx, rax
                             0xeb, 0xfe, // jmp $
                         });
    host.write(0x5000, {
                           0x8c, 0xc9, // mov ecx, cs
                           0x8c, 0xd2, // mov edx, ss
                           0x48, 0x89, 0xe6, // mov rsi, rsp
                           0xb8, 0x77, 0x00, 0x00, 0x00, // mov eax, 0x77
                           0x48, 0xcb, // retfq
                       });
    x86::CpuState& s = cpu->state();
    s.rip = 0x400000;
    s.gpr[x86::k_rsp] = 0x480000;
    cpu->run(20);
    EXPECT_EQ(s.gpr[x86::k_rcx] & 0xffff, k_sel_code64);
    EXPECT_EQ(s.gpr[x86::k_rdx] & 0xffff, 0u); // null SS at CPL 0
    EXPECT_EQ(s.gpr[x86::k_rsi], k_kernel_stack - 32);
    EXPECT_EQ(s.gpr[x86::k_rbx], 0x77u);
    EXPECT_EQ(s.segment(x86::Seg::CS).selector, k_sel_user_code64);
    EXPECT_EQ(s.gpr[x86::k_rsp], 0x480000u);
    EXPECT_EQ(s.rip, 0x40000au);
}

TEST(InterpGates, FaultThroughTaskGatePushesErrorCodeOnNewStack)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 0);
    setup_task_b(host);
    put64(host, k_idt32 + 13 * 8, 0x0000850000380000ull); // #GP -> task gate to B
    host.write(0x6000, { 0x58, 0xf4 }); // pop eax (the error code); hlt
    host.write(0x4000, {
                           0x66, 0xb8, 0x48, 0x00, // mov ax, 0x48 (past the GDT limit)
                           0x8e, 0xd8, // mov ds, ax: #GP(0x48)
                       });
    x86::CpuState& s = cpu->state();
    cpu->run(20);
    EXPECT_EQ(host.resets, 0);
    EXPECT_EQ(s.tr.selector, k_tss_b_sel);
    EXPECT_EQ(s.gpr[x86::k_rax], 0x48u);
    EXPECT_EQ(s.gpr[x86::k_rsp], 0x7000u);
    EXPECT_TRUE(s.rflags & x86::k_flag_nt);
    EXPECT_EQ(get32(host, k_tss_b) & 0xffff, k_tss_a_sel); // back link
    EXPECT_EQ(get32(host, k_tss_a + 0x20), 0x4004u); // A resumes at the faulting MOV
}

TEST(InterpGates, TssTrapBitRaisesDebugTrapInNewTask)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_protected(*cpu, host, 0);
    setup_task_b(host);
    put32(host, k_tss_b + 0x64, 1); // T bit
    put64(host, k_idt32 + 1 * 8, 0x00008e0000085800ull); // #DB: interrupt gate to 0008:5800
    host.write(0x5800, { 0xf4 }); // hlt
    host.write(0x6000, { 0x90, 0xf4 });
    host.write(0x4000, { 0xea, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00 }); // jmp far to task gate B
    cpu->run(20);
    const x86::CpuState& s = cpu->state();
    EXPECT_EQ(s.tr.selector, k_tss_b_sel);
    EXPECT_TRUE(s.halted);
    EXPECT_EQ(s.rip, 0x5801u); // in the #DB handler
    EXPECT_TRUE(s.dr[6] & (1u << 15)); // BT
    EXPECT_EQ(get32(host, 0x7000 - 12), 0x6000u); // the frame: B's first instruction, not yet run
}
