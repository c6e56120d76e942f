// Interpreter system-level behaviour on tiny payloads with a fake host:
// mode transitions from the reset vector to long mode, exceptions and
// interrupts through the IVT/IDT, HLT wake-up, triple fault, TLB
// invalidation, self-modifying code, DMA invalidation, SYSCALL/SYSRET.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

const uint8_t k_boot[] = {
#include "tests/unit/accel/payloads/boot.inc"
};

std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host)
{
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    return std::move(cpu).value();
}

std::string port_e9(const FakeHost& host)
{
    std::string s;
    for (auto& w : host.pio_writes)
        if (w.port == 0xe9)
            s += char(w.value);
    return s;
}

} // namespace

TEST(InterpSystem, ResetVectorToLongModeWithExceptionsAndInterrupts)
{
    FakeHost host(64ull << 20);
    std::vector<uint8_t> rom(0x10000, 0xf4);
    const uint8_t jmp[] = { 0xea, 0x00, 0x7c, 0x00, 0x00 }; // jmp 0000:7c00
    std::memcpy(rom.data() + 0xfff0, jmp, sizeof jmp);
    ASSERT_TRUE(host.memory().add_rom(0xffff0000, rom, "bios").ok());
    std::memcpy(host.ram(0x7c00), k_boot, sizeof k_boot);
    int halts = 0;
    host.on_halt = [&](FakeHost& h) {
        // First HLT (STI; HLT): raise vector 0x20. Second (CLI; HLT): stop.
        if (++halts == 1) {
            h.irqs.push_back(0x20);
            return true;
        }
        return false;
    };
    auto cpu = make_cpu(host);
    EXPECT_EQ(cpu->state().rip, 0xfff0u);
    EXPECT_EQ(cpu->state().segment(x86::Seg::CS).base, 0xffff0000u);
    interp::RunExit exit = cpu->run(100000);
    EXPECT_EQ(exit, interp::RunExit::Stopped);
    EXPECT_EQ(port_e9(host), "RVPLUAFBID");
    const x86::CpuState& s = cpu->state();
    EXPECT_TRUE(s.efer & x86::k_efer_lma);
    EXPECT_EQ(s.segment(x86::Seg::CS).selector, 0x18);
    EXPECT_EQ(s.gpr[x86::k_rbx], 0u); // #PF error code: supervisor read, not present
    EXPECT_EQ(s.gpr[x86::k_rcx], 0x40000000u); // CR2
    EXPECT_TRUE(s.halted);
    EXPECT_EQ(host.resets, 0);
}

TEST(InterpSystem, TripleFaultRequestsReset)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    cpu->state().idtr.limit = 0; // every vector is outside the IDT
    host.write(0x400000, { 0xcc }); // int3 -> #GP -> #DF -> shutdown
    cpu->state().rip = 0x400000;
    cpu->state().gpr[x86::k_rsp] = 0x9000;
    EXPECT_EQ(cpu->run(100), interp::RunExit::Reset);
    EXPECT_EQ(host.resets, 1);
}

TEST(InterpSystem, InvlpgAndDirtyBit)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    host.ram(0x400000)[0] = 0x22;
    host.write(0x100000,
        { 0xc6, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x11, 0x48, 0x8b, 0x14, 0x25, 0x08, 0x20, 0x01, 0x00, 0x48, 0xb8,
            0x87, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x89, 0x04, 0x25, 0x08, 0x20, 0x01, 0x00, 0x0f, 0x01,
            0x3c, 0x25, 0x00, 0x00, 0x20, 0x00, 0x8a, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00, 0xf4 });
    cpu->state().rip = 0x100000;
    cpu->state().gpr[x86::k_rsp] = 0x9000;
    EXPECT_EQ(cpu->run(100), interp::RunExit::Stopped);
    const x86::CpuState& s = cpu->state();
    EXPECT_EQ(host.ram(0x200000)[0], 0x11);
    EXPECT_EQ(s.gpr[x86::k_rdx] & 0x60, 0x60u); // accessed + dirty on the 2 MiB PDE
    EXPECT_EQ(s.gpr[x86::k_rbx] & 0xff, 0x22u); // read through the new mapping after INVLPG
}

TEST(InterpSystem, SelfModifyingCodeIsSeen)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    // Run "mov al, 0; hlt" once so it is in the decode cache, then patch it
    // from the guest and run again.
    host.write(0x100000, { 0xb0, 0x00, 0xf4 });
    cpu->state().rip = 0x100000;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0u);
    host.write(0x100100, { 0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x42, 0xb0, 0x00, 0xf4 });
    cpu->state().halted = false;
    cpu->state().rip = 0x100100;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0x42u);
    // DMA-style change: the host rewrites code and notifies.
    host.write(0x100000, { 0xb0, 0x07, 0xf4 });
    cpu->invalidate_code(0x100000, 3);
    cpu->state().halted = false;
    cpu->state().rip = 0x100000;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0x07u);
}

TEST(InterpSystem, SyscallSysretRoundTrip)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 3);
    x86::CpuState& s = cpu->state();
    s.msr.star = (uint64_t(k_sel_user_code32) << 48) | (uint64_t(k_sel_code64) << 32); // as Linux
    s.msr.lstar = 0x101000;
    s.msr.sfmask = 0x200;
    host.write(0x100000, { 0x0f, 0x05, 0x48, 0xc7, 0xc1, 0x77, 0x00, 0x00, 0x00, 0xf4 });
    host.write(0x101000, { 0x48, 0xc7, 0xc3, 0x55, 0x00, 0x00, 0x00, 0x48, 0x0f, 0x07 });
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(5);
    EXPECT_EQ(s.gpr[x86::k_rbx], 0x55u);
    EXPECT_EQ(s.gpr[x86::k_rcx], 0x77u);
    EXPECT_EQ(s.gpr[x86::k_r11] & 0x200, 0x200u); // RFLAGS saved by SYSCALL
    EXPECT_EQ(delivered_vector(s), 13); // the final HLT at CPL 3 is #GP
}

TEST(InterpSystem, KickStopsRun)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    host.write(0x100000, { 0xeb, 0xfe }); // jmp .
    cpu->state().rip = 0x100000;
    EXPECT_EQ(cpu->run(1000), interp::RunExit::Budget);
    cpu->kick();
    EXPECT_EQ(cpu->run(1000000000), interp::RunExit::Kicked);
}

namespace {

uint64_t read64(FakeHost& host, uint64_t gpa)
{
    uint64_t v;
    std::memcpy(&v, host.ram(gpa), 8);
    return v;
}

// Runs `code` at 0x100000 in user mode until an exception stub is reached;
// returns the vector (or -1) and leaves the frame on the kernel stack.
int run_user(FakeHost& host, interp::Interpreter& cpu, const std::vector<uint8_t>& code, uint64_t rax = 0)
{
    host.write(0x100000, code);
    cpu.invalidate_code(0x100000, code.size());
    x86::CpuState& s = cpu.state();
    s.rip = 0x100000;
    s.gpr[x86::k_rax] = rax;
    s.gpr[x86::k_rsp] = 0x180000;
    cpu.run(100);
    return delivered_vector(s);
}

constexpr uint64_t k_pd = k_pml4 + 0x2000;
constexpr uint64_t k_frame_err = k_kernel_stack - 48; // error code of a user->kernel frame
constexpr uint64_t k_frame_rip = k_kernel_stack - 40;

} // namespace

TEST(InterpSystem, UserPageFaultErrorCodes)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    struct Case {
        uint64_t pde; // PDE for 0x400000 (2 MiB page)
        std::vector<uint8_t> code;
        uint64_t rax;
        uint32_t error;
        uint64_t cr2;
    } cases[] = {
        // Write to a read-only user page: present | write | user.
        { 0x400000 | 0x85, { 0xc6, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0x01 }, 0, 0x7, 0x400000 },
        // Read of a supervisor page: present | user.
        { 0x400000 | 0x83, { 0x8a, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00 }, 0, 0x5, 0x400000 },
        // Fetch from an NX page: present | user | instruction fetch.
        { 0x400000 | 0x87 | (1ull << 63), { 0xff, 0xd0 }, 0x400010, 0x15, 0x400010 },
        // Not present, read.
        { 0, { 0x8a, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00 }, 0, 0x4, 0x400000 },
        // Reserved bit (bit 51 is above MAXPHYADDR 40).
        { 0x400000 | 0x87 | (1ull << 51), { 0x8a, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00 }, 0, 0xd, 0x400000 },
    };
    for (const Case& c : cases) {
        cpu->reset(x86::ResetKind::PowerOn);
        setup_long_mode(*cpu, host, 3);
        std::memcpy(host.ram(k_pd + 2 * 8), &c.pde, 8);
        EXPECT_EQ(run_user(host, *cpu, c.code, c.rax), 14);
        EXPECT_EQ(read64(host, k_frame_err), c.error);
        EXPECT_EQ(cpu->state().cr2, c.cr2);
    }
}

TEST(InterpSystem, PrivilegeChecksFromUserMode)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    // INT 0x80 through a DPL-0 gate: #GP with the IDT selector error code.
    setup_long_mode(*cpu, host, 3);
    host.ram(k_idt + 0x80 * 16 + 5)[0] = 0x8e;
    EXPECT_EQ(run_user(host, *cpu, { 0xcd, 0x80 }), 13);
    EXPECT_EQ(read64(host, k_frame_err), 0x80u * 8 + 2);
    EXPECT_EQ(read64(host, k_frame_rip), 0x100000u); // faults report the INT itself
    // INT 0x81 through a DPL-3 gate works and returns past the INT.
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 3);
    EXPECT_EQ(run_user(host, *cpu, { 0xcd, 0x81 }), 0x81);
    EXPECT_EQ(read64(host, k_kernel_stack - 40), 0x100002u);
    // IN with IOPL 0 and no I/O bitmap: #GP(0); HLT at CPL 3: #GP(0).
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 3);
    EXPECT_EQ(run_user(host, *cpu, { 0xe4, 0x60 }), 13);
    EXPECT_EQ(read64(host, k_frame_err), 0u);
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 3);
    EXPECT_EQ(run_user(host, *cpu, { 0xf4 }), 13);
    // With IOPL 3 the port read goes to the host (unclaimed: all ones).
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 3);
    cpu->state().rflags |= x86::k_flag_iopl;
    run_user(host, *cpu, { 0xe4, 0x60, 0x0f, 0x0b });
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0xffu);
}

TEST(InterpSystem, StiShadowAndNmi)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    s.rflags &= ~x86::k_flag_if;
    host.irqs.push_back(0x30);
    // sti; nop; nop; hlt: the interrupt is taken after the first NOP.
    host.write(0x100000, { 0xfb, 0x90, 0x90, 0xf4 });
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(3);
    EXPECT_EQ(delivered_vector(s), 0x30);
    EXPECT_EQ(read64(host, 0x8000 - 40), 0x100002u); // return address: the second NOP

    // NMI: taken with IF clear; the handler's IRETQ unblocks NMIs.
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    s.rflags &= ~x86::k_flag_if;
    host.write(0x100000, { 0x90, 0x90, 0xf4 });
    host.write(k_stubs + 2 * 16, { 0x48, 0xcf }); // iretq
    cpu->invalidate_code(k_stubs, 4096);
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    host.nmi = true;
    cpu->run(1);
    EXPECT_FALSE(host.nmi);
    EXPECT_EQ(s.rip, 0x100000u);
    EXPECT_FALSE(s.events.nmi_blocked);
    // A handler that does not IRET keeps further NMIs pending.
    host.write(k_stubs + 2 * 16, { 0xf4 });
    cpu->invalidate_code(k_stubs, 4096);
    host.nmi = true;
    cpu->run(1);
    EXPECT_EQ(delivered_vector(s), 2);
    EXPECT_TRUE(s.events.nmi_blocked);
    host.nmi = true;
    host.on_halt = [](FakeHost&) { return false; };
    cpu->run(5);
    EXPECT_TRUE(host.nmi); // not acknowledged while blocked
}

TEST(InterpSystem, ProtectedModeSegmentLimit)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    x86::CpuState& s = cpu->state();
    // Legacy protected mode without paging: 32-bit IDT gates to the stubs.
    for (unsigned v = 0; v < 32; v++) {
        uint64_t target = k_stubs + v * 16;
        uint64_t gate = (target & 0xffff) | (uint64_t(0x08) << 16) | (0x8eull << 40) | ((target >> 16) << 48);
        std::memcpy(host.ram(k_idt + v * 8), &gate, 8);
        std::memset(host.ram(target), 0xf4, 16);
    }
    uint64_t gdt[] = { 0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull, 0x0040930000000fffull };
    std::memcpy(host.ram(k_gdt), gdt, sizeof gdt);
    s.cr0 = x86::k_cr0_pe | x86::k_cr0_et;
    s.gdtr = { k_gdt, 0x1f };
    s.idtr = { k_idt, 0xff };
    s.segment(x86::Seg::CS) = { 0x08, 0xc09b, 0xffffffff, 0 };
    s.segment(x86::Seg::SS) = { 0x10, 0xc093, 0xffffffff, 0 };
    s.segment(x86::Seg::DS) = { 0x18, 0x4093, 0xfff, 0 }; // 4 KiB data segment
    s.gpr[x86::k_rsp] = 0x8000;
    // mov eax, [0xffc] is inside the limit; mov eax, [0x1000] is not.
    host.write(0x100000, { 0xa1, 0xfc, 0x0f, 0x00, 0x00, 0xa1, 0x00, 0x10, 0x00, 0x00 });
    s.rip = 0x100000;
    cpu->run(3);
    EXPECT_EQ(delivered_vector(s), 13);
    uint32_t err, rip;
    std::memcpy(&err, host.ram(0x8000 - 16), 4);
    std::memcpy(&rip, host.ram(0x8000 - 12), 4);
    EXPECT_EQ(err, 0u);
    EXPECT_EQ(rip, 0x100005u);
    // Loading a selector beyond the GDT limit: #GP(selector).
    cpu->reset(x86::ResetKind::PowerOn);
    s.cr0 = x86::k_cr0_pe | x86::k_cr0_et;
    s.gdtr = { k_gdt, 0x1f };
    s.idtr = { k_idt, 0xff };
    s.segment(x86::Seg::CS) = { 0x08, 0xc09b, 0xffffffff, 0 };
    s.segment(x86::Seg::SS) = { 0x10, 0xc093, 0xffffffff, 0 };
    s.gpr[x86::k_rsp] = 0x8000;
    s.gpr[x86::k_rax] = 0x28;
    host.write(0x100000, { 0x8e, 0xd8 }); // mov ds, ax
    cpu->invalidate_code(0x100000, 16);
    s.rip = 0x100000;
    cpu->run(2);
    EXPECT_EQ(delivered_vector(s), 13);
    std::memcpy(&err, host.ram(0x8000 - 16), 4);
    EXPECT_EQ(err, 0x28u);
}

TEST(InterpSystem, SingleStepTrap)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    host.write(0x100000, { 0x90, 0x90, 0xf4 });
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    s.rflags |= x86::k_flag_tf;
    cpu->run(1);
    EXPECT_EQ(delivered_vector(s), 1);
    EXPECT_EQ(read64(host, 0x8000 - 40), 0x100001u); // trap after the first NOP
    EXPECT_TRUE(s.dr[6] & (1u << 14));
    EXPECT_FALSE(s.rflags & x86::k_flag_tf); // cleared by the delivery
}

TEST(InterpSystem, InterruptStackTable)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    // Vector 6 uses IST 2, which points at its own stack.
    host.ram(k_idt + 6 * 16 + 4)[0] = 2;
    uint64_t ist2 = 0x70000;
    std::memcpy(host.ram(k_tss + 0x24 + 8), &ist2, 8);
    host.write(0x100000, { 0x0f, 0x0b }); // ud2
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(1);
    EXPECT_EQ(delivered_vector(s), 6);
    EXPECT_EQ(read64(host, ist2 - 40), 0x100000u); // RIP of the frame on the IST stack
    EXPECT_EQ(read64(host, ist2 - 16), 0x8000u); // the interrupted RSP
}

TEST(InterpSystem, FxsaveFxrstorRoundTrip)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    s.fpu.xmm[0].q[0] = 0x1122334455667788ull;
    s.fpu.xmm[0].q[1] = 0x99aabbccddeeff00ull;
    s.fpu.xmm[15].q[1] = 0x0123456789abcdefull;
    s.fpu.mxcsr = 0x3f80;
    s.fpu.fcw = 0x27f;
    // fxsave [rbx]; xor rax,rax; movq xmm0, rax; fxrstor [rbx]; ud2
    host.write(0x100000,
        { 0x0f, 0xae, 0x03, 0x48, 0xc7, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x66, 0x48, 0x0f, 0x6e, 0xc0, 0x0f, 0xae, 0x0b,
            0x0f, 0x0b });
    s.rip = 0x100000;
    s.gpr[x86::k_rbx] = 0x200000;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 6);
    EXPECT_EQ(s.fpu.xmm[0].q[0], 0x1122334455667788ull);
    EXPECT_EQ(s.fpu.xmm[0].q[1], 0x99aabbccddeeff00ull);
    EXPECT_EQ(s.fpu.xmm[15].q[1], 0x0123456789abcdefull);
    uint32_t mxcsr;
    std::memcpy(&mxcsr, host.ram(0x200000 + 24), 4);
    EXPECT_EQ(mxcsr, 0x3f80u);
    uint16_t fcw;
    std::memcpy(&fcw, host.ram(0x200000), 2);
    EXPECT_EQ(fcw, 0x27fu);
    // A misaligned FXSAVE area is #GP.
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    s.rip = 0x100000;
    s.gpr[x86::k_rbx] = 0x200008;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(2);
    EXPECT_EQ(delivered_vector(s), 13);
}

TEST(InterpSystem, GuestMemoryObserverInvalidatesCode)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    host.memory().set_write_observer(cpu.get());
    host.write(0x100000, { 0xb0, 0x01, 0xf4 }); // mov al, 1; hlt
    cpu->state().rip = 0x100000;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 1u);
    // A device writes new code through the DMA API.
    const uint8_t patch[] = { 0xb0, 0x02 };
    ASSERT_TRUE(host.memory().write(0x100000, patch, sizeof patch).ok());
    cpu->state().halted = false;
    cpu->state().rip = 0x100000;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 2u);
    host.memory().set_write_observer(nullptr);
}

TEST(InterpSystem, InstructionCrossingIntoMissingPage)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    uint64_t none = 0;
    std::memcpy(host.ram(k_pd + 8), &none, 8); // 0x200000-0x3fffff not present
    // mov eax, imm32 starting 2 bytes before the boundary.
    host.write(0x1ffffe, { 0xb8, 0x11 });
    s.rip = 0x1ffffe;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(1);
    EXPECT_EQ(delivered_vector(s), 14);
    EXPECT_EQ(s.cr2, 0x200000u);
    EXPECT_EQ(read64(host, 0x8000 - 48), 0x10u); // supervisor instruction fetch, not present
    EXPECT_EQ(read64(host, 0x8000 - 40), 0x1ffffeu); // the faulting instruction
    // Mapped again, the same bytes decode across the boundary.
    uint64_t pde = 0x200000 | 0x87;
    std::memcpy(host.ram(k_pd + 8), &pde, 8);
    host.write(0x200000, { 0x22, 0x33, 0x44, 0xf4 });
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    s.rip = 0x1ffffe;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(1);
    EXPECT_EQ(s.gpr[x86::k_rax], 0x44332211u);
}

TEST(InterpSystem, MsrAccess)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    x86::CpuState& s = cpu->state();
    auto run_code = [&](std::vector<uint8_t> code, uint32_t ecx, uint64_t edx_eax) {
        cpu->reset(x86::ResetKind::PowerOn);
        setup_long_mode(*cpu, host, 0);
        code.push_back(0xf4);
        host.write(0x100000, code);
        cpu->invalidate_code(0x100000, code.size());
        s.rip = 0x100000;
        s.gpr[x86::k_rsp] = 0x8000;
        s.gpr[x86::k_rcx] = ecx;
        s.gpr[x86::k_rax] = edx_eax & 0xffffffff;
        s.gpr[x86::k_rdx] = edx_eax >> 32;
        cpu->run(10);
    };
    // WRMSR LSTAR then RDMSR it back.
    run_code({ 0x0f, 0x30, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x32 }, 0xc0000082, 0xffffffff81000000ull);
    EXPECT_EQ(s.msr.lstar, 0xffffffff81000000ull);
    EXPECT_EQ(s.gpr[x86::k_rax], 0x81000000u);
    EXPECT_EQ(s.gpr[x86::k_rdx], 0xffffffffu);
    // A non-canonical LSTAR, an unknown MSR and clearing EFER.LME with paging on: #GP.
    run_code({ 0x0f, 0x30 }, 0xc0000082, 0x0000800000000000ull);
    EXPECT_EQ(delivered_vector(s), 13);
    run_code({ 0x0f, 0x32 }, 0x12345678, 0);
    EXPECT_EQ(delivered_vector(s), 13);
    run_code({ 0x0f, 0x30 }, 0xc0000080, 0);
    EXPECT_EQ(delivered_vector(s), 13);
    // The TSC follows the virtual clock (1 GHz) plus the WRMSR offset.
    host.clock_ns = 5000;
    run_code({ 0x0f, 0x30, 0x0f, 0x31 }, 0x10, 1000000);
    host.clock_ns = 5000;
    EXPECT_EQ((s.gpr[x86::k_rdx] << 32) | s.gpr[x86::k_rax], 1000000u);
    EXPECT_EQ(s.msr.tsc_offset, 1000000 - 5000);
}
