// -d tracing of the interpreter: in_asm, int, cpu, exec and cpu_reset
// write QEMU-shaped records to the -D file while the boot payload goes
// from the reset vector through real and protected mode into long mode.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "accel/x86/cpu_dump.h"
#include "tests/oracle/test_machine.h"
#include "util/log.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

const uint8_t k_boot[] = {
#include "tests/unit/accel/payloads/boot.inc"
};

std::string read_file(const std::string& path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

size_t count(const std::string& text, const std::string& what)
{
    size_t n = 0;
    for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        n++;
    return n;
}

} // namespace

TEST(InterpTrace, BootPayloadLogsEveryCategory)
{
    std::string path = testing::TempDir() + "kiln-trace-test.log";
    ASSERT_TRUE(Log::set_file(path));
    std::string unknown;
    ASSERT_TRUE(Log::enable_categories("in_asm,int,cpu_reset,cpu,exec", &unknown)) << unknown;

    FakeHost host(64ull << 20);
    std::vector<uint8_t> rom(0x10000, 0xf4);
    const uint8_t jmp[] = { 0xea, 0x00, 0x7c, 0x00, 0x00 }; // jmp 0000:7c00
    std::memcpy(rom.data() + 0xfff0, jmp, sizeof jmp);
    ASSERT_TRUE(host.memory().add_rom(0xffff0000, rom, "bios").ok());
    std::memcpy(host.ram(0x7c00), k_boot, sizeof k_boot);
    int halts = 0;
    host.on_halt = [&](FakeHost& h) {
        if (++halts == 1) {
            h.irqs.push_back(0x20);
            return true;
        }
        return false;
    };
    auto model = x86::CpuModel::by_name("max");
    ASSERT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    ASSERT_TRUE(cpu.ok());
    EXPECT_EQ(cpu.value()->run(100000), interp::RunExit::Stopped);
    ASSERT_TRUE(Log::set_file(""));
    std::string log = read_file(path);
    std::remove(path.c_str());

    // cpu_reset: the power-on state in the 32-bit layout.
    EXPECT_NE(log.find("CPU Reset (CPU 0)\nEAX=00000000 EBX=00000000 ECX=00000000 EDX="), std::string::npos);
    EXPECT_NE(log.find("EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0"), std::string::npos);
    EXPECT_NE(log.find("CS =f000 ffff0000 0000ffff 00009b00\n"), std::string::npos);
    // in_asm: the reset vector's far jump, disassembled when capstone is there.
    size_t first = log.find("----------------\nIN: \n0xfffffff0:  ea 00 7c 00 00 ");
    ASSERT_NE(first, std::string::npos);
#ifdef KILN_HAVE_CAPSTONE
    EXPECT_NE(log.find("ljmp", first), std::string::npos);
#endif
    // Each instruction is logged once however often it runs.
    EXPECT_EQ(count(log, "0xfffffff0:  "), 1u);
    // int: the external interrupt and the #PF with CR2, each with a
    // 64-bit register dump.
    EXPECT_NE(log.find("Servicing hardware INT=0x20"), std::string::npos);
    size_t irq = log.find(": v=20 e=0000 i=0 cpl=0 IP=0018:");
    ASSERT_NE(irq, std::string::npos);
    size_t pf = log.find(": v=0e e=0000 i=0 cpl=0 IP=0018:");
    ASSERT_NE(pf, std::string::npos);
    EXPECT_NE(log.find(" CR2=0000000040000000\nRAX=", pf), std::string::npos);
    // exec and cpu: one Trace line and one dump per block, in both layouts.
    EXPECT_GT(count(log, "Trace 0: 0 [00000000ffff0000/00000000fffffff0/"), 0u);
    EXPECT_GT(count(log, "\nRIP="), 0u);
    EXPECT_GT(count(log, "\nEIP="), 0u);
    EXPECT_NE(log.find(" DPL=0 CS64 [-"), std::string::npos);
    EXPECT_NE(log.find("EFER=0000000000000500"), std::string::npos);
}

TEST(InterpTrace, CpuDumpFormat)
{
    x86::CpuState s;
    x86::reset_cpu_state(s, x86::ResetKind::PowerOn, 0x663, true);
    s.cr0 |= x86::k_cr0_pe;
    s.efer = x86::k_efer_lma | x86::k_efer_lme;
    s.gpr[x86::k_rbx] = 0x1122334455667788ull;
    s.rflags = 0x247; // ZF PF CF IF
    auto& cs = s.segment(x86::Seg::CS);
    cs.selector = 0x10;
    cs.base = 0;
    cs.limit = 0xffffffff;
    cs.attr = x86::k_seg_p | x86::k_seg_s | 0xb | x86::k_seg_l | x86::k_seg_g;
    std::string d = x86::format_cpu_state(s);
    EXPECT_NE(d.find("RAX=0000000000000000 RBX=1122334455667788 RCX="), std::string::npos) << d;
    EXPECT_NE(d.find("RFL=00000247 [---Z-PC]"), std::string::npos) << d;
    EXPECT_NE(d.find("CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]\n"), std::string::npos) << d;
    EXPECT_NE(d.find("\nEFER=0000000000000500\n"), std::string::npos) << d;
}

TEST(InterpTrace, TripleFaultReportsRecentBlocks)
{
    std::string path = testing::TempDir() + "kiln-trace-triple.log";
    ASSERT_TRUE(Log::set_file(path));
    ASSERT_TRUE(Log::enable_categories("int"));
    FakeHost host(16ull << 20);
    auto model = x86::CpuModel::by_name("max");
    ASSERT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    ASSERT_TRUE(cpu.ok());
    setup_long_mode(*cpu.value(), host, 0);
    cpu.value()->state().idtr.limit = 0; // every vector is outside the IDT
    host.write(0x400000, { 0xeb, 0x00, 0xcc }); // jmp +0; int3 -> #GP -> #DF -> shutdown
    cpu.value()->state().rip = 0x400000;
    cpu.value()->state().gpr[x86::k_rsp] = 0x9000;
    EXPECT_EQ(cpu.value()->run(100), interp::RunExit::Reset);
    ASSERT_TRUE(Log::set_file(""));
    std::string log = read_file(path);
    std::remove(path.c_str());
    EXPECT_NE(log.find("check_exception old: 0xd new 0xd"), std::string::npos) << log;
    EXPECT_NE(log.find("Triple fault\nRecent blocks (oldest first): 400000 400002\nRAX="), std::string::npos) << log;
}
