// SMEP and SMAP (advertised by -cpu max): with CR4.SMEP, CPL 0 instruction
// fetches from user pages fault with a present|fetch #PF; with CR4.SMAP,
// CPL 0 data accesses to user pages fault unless RFLAGS.AC is set (STAC),
// and a translation made under STAC does not outlive CLAC.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_pd = k_pml4 + 0x2000; // setup_long_mode's page directory

struct Outcome {
    int vector;
    uint64_t error;
    uint64_t frame_rip;
    uint64_t cr2;
    uint64_t rax;
};

// Runs `code` at CPL 0 from the user page at 0x400000, with the first
// 2 MiB (tables, stubs, kernel stack) supervisor-only.
Outcome run_on_user_page(const std::vector<uint8_t>& code, uint64_t cr4_bits)
{
    FakeHost host(16ull << 20);
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    EXPECT_TRUE(model->query(7, 0, 0, false).ebx & x86::k_cpuid7_ebx_smep);
    EXPECT_TRUE(model->query(7, 0, 0, false).ebx & x86::k_cpuid7_ebx_smap);
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    interp::Interpreter& c = *cpu.value();
    setup_long_mode(c, host, 0);
    uint64_t pde;
    std::memcpy(&pde, host.ram(k_pd), 8);
    pde &= ~4ull;
    std::memcpy(host.ram(k_pd), &pde, 8);
    std::vector<uint8_t> program = code;
    program.push_back(0xf4); // hlt
    host.write(0x400000, program);
    const uint32_t data = 0x5a5a;
    std::memcpy(host.ram(0x500000), &data, 4);
    x86::CpuState& s = c.state();
    s.cr4 |= cr4_bits;
    s.rip = 0x400000;
    s.gpr[x86::k_rsp] = 0x9e000;
    c.run(20);
    Outcome o {};
    o.vector = delivered_vector(s);
    std::memcpy(&o.error, host.ram(0x9e000 - 48), 8);
    std::memcpy(&o.frame_rip, host.ram(0x9e000 - 40), 8);
    o.cr2 = s.cr2;
    o.rax = s.gpr[x86::k_rax];
    return o;
}

const std::vector<uint8_t> k_load = { 0x8b, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00 }; // mov eax, [0x500000]

} // namespace

TEST(InterpSmep, SupervisorFetchFromUserPageFaults)
{
    Outcome o = run_on_user_page({ 0x90 }, x86::k_cr4_smep);
    EXPECT_EQ(o.vector, 14);
    EXPECT_EQ(o.error, 0x11u); // present, instruction fetch
    EXPECT_EQ(o.cr2, 0x400000u);
}

TEST(InterpSmep, WithoutSmepTheFetchRuns) { EXPECT_EQ(run_on_user_page({ 0x90 }, 0).vector, -1); }

TEST(InterpSmap, SupervisorReadOfUserPageFaults)
{
    Outcome o = run_on_user_page(k_load, x86::k_cr4_smap);
    EXPECT_EQ(o.vector, 14);
    EXPECT_EQ(o.error, 0x1u); // present, supervisor read
    EXPECT_EQ(o.cr2, 0x500000u);
}

TEST(InterpSmap, StacAllowsTheAccessUntilClac)
{
    std::vector<uint8_t> code = { 0x0f, 0x01, 0xcb }; // stac
    code.insert(code.end(), k_load.begin(), k_load.end());
    code.insert(code.end(), { 0x0f, 0x01, 0xca }); // clac
    code.insert(code.end(), k_load.begin(), k_load.end());
    Outcome o = run_on_user_page(code, x86::k_cr4_smap);
    EXPECT_EQ(o.rax, 0x5a5au); // the load under STAC
    EXPECT_EQ(o.vector, 14); // the same load after CLAC
    EXPECT_EQ(o.frame_rip, 0x400000u + 3 + 7 + 3);
}
