// SMEP (advertised by -cpu max): with CR4.SMEP, CPL 0 instruction fetches
// from user pages fault with a present|fetch #PF; without it they run.
#include <cstring>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_pd = k_pml4 + 0x2000; // setup_long_mode's page directory

int run_kernel_code_on_user_page(bool smep, uint64_t& error, uint64_t& cr2)
{
    FakeHost host(16ull << 20);
    auto model = x86::CpuModel::by_name("max");
    EXPECT_TRUE(model.ok());
    EXPECT_TRUE(model->query(7, 0, 0, false).ebx & x86::k_cpuid7_ebx_smep);
    auto cpu = interp::Interpreter::create(host, model.value());
    EXPECT_TRUE(cpu.ok());
    interp::Interpreter& c = *cpu.value();
    setup_long_mode(c, host, 0);
    // The first 2 MiB (tables, stubs, kernel stack) become supervisor-only;
    // the code at 0x400000 stays on a user page.
    uint64_t pde;
    std::memcpy(&pde, host.ram(k_pd), 8);
    pde &= ~4ull;
    std::memcpy(host.ram(k_pd), &pde, 8);
    host.write(0x400000, { 0x90, 0xf4 }); // nop; hlt
    x86::CpuState& s = c.state();
    if (smep)
        s.cr4 |= x86::k_cr4_smep;
    s.rip = 0x400000;
    s.gpr[x86::k_rsp] = 0x9e000;
    c.run(10);
    std::memcpy(&error, host.ram(0x9e000 - 48), 8);
    cr2 = s.cr2;
    return delivered_vector(s);
}

} // namespace

TEST(InterpSmep, SupervisorFetchFromUserPageFaults)
{
    uint64_t error = 0, cr2 = 0;
    EXPECT_EQ(run_kernel_code_on_user_page(true, error, cr2), 14);
    EXPECT_EQ(error, 0x11u); // present, instruction fetch
    EXPECT_EQ(cr2, 0x400000u);
}

TEST(InterpSmep, WithoutSmepTheFetchRuns)
{
    uint64_t error = 0, cr2 = 0;
    EXPECT_EQ(run_kernel_code_on_user_page(false, error, cr2), -1);
}
