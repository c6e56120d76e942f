// Interpreter system-level behaviour on tiny payloads with a fake host:
// mode transitions from the reset vector to long mode, exceptions and
// interrupts through the IVT/IDT, HLT wake-up, triple fault, TLB
// invalidation, self-modifying code, DMA invalidation, SYSCALL/SYSRET.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

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
    const uint8_t jmp[] = {0xea, 0x00, 0x7c, 0x00, 0x00}; // jmp 0000:7c00
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
    EXPECT_EQ(s.gpr[x86::k_rbx], 0u);           // #PF error code: supervisor read, not present
    EXPECT_EQ(s.gpr[x86::k_rcx], 0x40000000u);  // CR2
    EXPECT_TRUE(s.halted);
    EXPECT_EQ(host.resets, 0);
}

TEST(InterpSystem, TripleFaultRequestsReset)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    cpu->state().idtr.limit = 0; // every vector is outside the IDT
    host.write(0x400000, {0xcc}); // int3 -> #GP -> #DF -> shutdown
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
    host.write(0x100000, {0xc6, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x11, 0x48, 0x8b, 0x14, 0x25, 0x08, 0x20,
                          0x01, 0x00, 0x48, 0xb8, 0x87, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x89,
                          0x04, 0x25, 0x08, 0x20, 0x01, 0x00, 0x0f, 0x01, 0x3c, 0x25, 0x00, 0x00, 0x20, 0x00,
                          0x8a, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00, 0xf4});
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
    host.write(0x100000, {0xb0, 0x00, 0xf4});
    cpu->state().rip = 0x100000;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0u);
    host.write(0x100100, {0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x42, 0xb0, 0x00, 0xf4});
    cpu->state().halted = false;
    cpu->state().rip = 0x100100;
    cpu->run(10);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax] & 0xff, 0x42u);
    // DMA-style change: the host rewrites code and notifies.
    host.write(0x100000, {0xb0, 0x07, 0xf4});
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
    s.msr.star = (uint64_t(0x18) << 48) | (uint64_t(0x08) << 32);
    s.msr.lstar = 0x101000;
    s.msr.sfmask = 0x200;
    host.write(0x100000, {0x0f, 0x05, 0x48, 0xc7, 0xc1, 0x77, 0x00, 0x00, 0x00, 0xf4});
    host.write(0x101000, {0x48, 0xc7, 0xc3, 0x55, 0x00, 0x00, 0x00, 0x48, 0x0f, 0x07});
    s.rip = 0x100000;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(5);
    EXPECT_EQ(s.gpr[x86::k_rbx], 0x55u);
    EXPECT_EQ(s.gpr[x86::k_rcx], 0x77u);
    EXPECT_EQ(s.gpr[x86::k_r11] & 0x200, 0x200u); // RFLAGS saved by SYSCALL
    EXPECT_EQ(delivered_vector(s), 13);           // the final HLT at CPL 3 is #GP
}

TEST(InterpSystem, KickStopsRun)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    setup_long_mode(*cpu, host, 0);
    host.write(0x100000, {0xeb, 0xfe}); // jmp .
    cpu->state().rip = 0x100000;
    EXPECT_EQ(cpu->run(1000), interp::RunExit::Budget);
    cpu->kick();
    EXPECT_EQ(cpu->run(1000000000), interp::RunExit::Kicked);
}
