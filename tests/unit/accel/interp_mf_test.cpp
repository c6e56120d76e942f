// Unmasked x87 exceptions: the faulting instruction only sets FSW.ES; the
// next waiting x87/MMX instruction (here FWAIT) raises #MF with CR0.NE,
// and FNCLEX clears the pending state first.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_stack = 0x480000;

int run(const std::vector<uint8_t>& tail, uint64_t& frame_rip, uint16_t& fsw)
{
    FakeHost host(16ull << 20);
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    interp::Interpreter& c = *cpu.value();
    setup_long_mode(c, host, 0);
    std::vector<uint8_t> code = {
        0xd9, 0x2c, 0x25, 0x00, 0x00, 0x50, 0x00, // fldcw [0x500000]: ZE unmasked
        0xd9, 0xe8, // fld1
        0xd9, 0xee, // fldz
        0xde, 0xf9, // fdivp: 1/0 sets ZE and ES, no fault yet
    };
    code.insert(code.end(), tail.begin(), tail.end());
    code.push_back(0xf4);
    host.write(0x400000, code);
    const uint16_t cw = 0x37b;
    std::memcpy(host.ram(0x500000), &cw, 2);
    x86::CpuState& s = c.state();
    s.cr0 |= x86::k_cr0_ne;
    s.rip = 0x400000;
    s.gpr[x86::k_rsp] = k_stack;
    c.run(20);
    std::memcpy(&frame_rip, host.ram(k_stack - 40), 8);
    fsw = s.fpu.fsw;
    return delivered_vector(s);
}

} // namespace

TEST(InterpMf, NextWaitingInstructionRaisesMf)
{
    uint64_t rip = 0;
    uint16_t fsw = 0;
    EXPECT_EQ(run({ 0x9b }, rip, fsw), 16); // fwait
    EXPECT_EQ(rip, 0x40000du); // the FWAIT itself
    EXPECT_EQ(fsw & 0x8084, 0x8084); // B, ES, ZE
}

TEST(InterpMf, FnclexClearsThePendingException)
{
    uint64_t rip = 0;
    uint16_t fsw = 0;
    EXPECT_EQ(run({ 0xdb, 0xe2, 0x9b }, rip, fsw), -1); // fnclex; fwait
    EXPECT_EQ(fsw & 0x80ff, 0);
}
