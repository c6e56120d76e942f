// PCID: CR4.PCIDE's preconditions, CR3 with a PCID and the no-flush bit,
// INVPCID's checks and that its flushes are seen by later accesses.
#include <cstring>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_code = 0x100000;
constexpr uint64_t k_desc = 0x200000; // INVPCID descriptor
constexpr uint64_t k_pd = k_pml4 + 0x2000; // setup_long_mode's page directory (2 MiB pages)

std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host, const char* model_name = "max")
{
    auto cpu = make_interpreter(host, model_name);
    EXPECT_TRUE(cpu);
    return cpu;
}

// Runs `code` (ending in UD2 or HLT) on a fresh long-mode CPU at `cpl`.
int run(FakeHost& host, interp::Interpreter& cpu, unsigned cpl, const std::vector<uint8_t>& code, uint64_t rax = 0,
    uint64_t rcx = 0)
{
    cpu.reset(x86::ResetKind::PowerOn);
    setup_long_mode(cpu, host, cpl);
    host.write(k_code, code);
    cpu.invalidate_code(k_code, code.size());
    x86::CpuState& s = cpu.state();
    s.rip = k_code;
    s.gpr[x86::k_rax] = rax;
    s.gpr[x86::k_rcx] = rcx;
    s.gpr[x86::k_rbx] = k_desc;
    s.gpr[x86::k_rsp] = cpl == 3 ? 0x180000 : 0x8000;
    cpu.run(50);
    return delivered_vector(s);
}

void put_desc(FakeHost& host, uint64_t lo, uint64_t addr)
{
    std::memcpy(host.ram(k_desc), &lo, 8);
    std::memcpy(host.ram(k_desc + 8), &addr, 8);
}

// mov rax, cr4; bts rax, 17; mov cr4, rax
const std::vector<uint8_t> k_set_pcide = { 0x0f, 0x20, 0xe0, 0x48, 0x0f, 0xba, 0xe8, 0x11, 0x0f, 0x22, 0xe0 };
// invpcid rcx, [rbx]
const std::vector<uint8_t> k_invpcid = { 0x66, 0x0f, 0x38, 0x82, 0x0b };
const std::vector<uint8_t> k_ud2 = { 0x0f, 0x0b };

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts)
{
    std::vector<uint8_t> v;
    for (auto& p : parts)
        v.insert(v.end(), p.begin(), p.end());
    return v;
}

} // namespace

TEST(InterpPcid, Cr4PcideAndCr3)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    ASSERT_TRUE(cpu->model().has_pcid());
    // CR3 with a non-zero PCID field: setting PCIDE is #GP.
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    uint64_t cr3 = cpu->state().cr3;
    // mov rax, cr3; or rax, 5; mov cr3, rax; <set pcide>; ud2
    std::vector<uint8_t> dirty_cr3 = { 0x0f, 0x20, 0xd8, 0x48, 0x83, 0xc8, 0x05, 0x0f, 0x22, 0xd8 };
    EXPECT_EQ(run(host, *cpu, 0, cat({ dirty_cr3, k_set_pcide, k_ud2 })), 13);
    EXPECT_FALSE(cpu->state().cr4 & x86::k_cr4_pcide);
    // PCID 0: allowed. Then CR3 = base | PCID 7 | bit 63 (no flush): stored without bit 63.
    // mov rax, cr3; or rax, 7; bts rax, 63; mov cr3, rax; mov rdx, cr3; ud2
    std::vector<uint8_t> pcid_cr3 = { 0x0f, 0x20, 0xd8, 0x48, 0x83, 0xc8, 0x07, 0x48, 0x0f, 0xba, 0xe8, 0x3f, 0x0f,
        0x22, 0xd8, 0x0f, 0x20, 0xda };
    EXPECT_EQ(run(host, *cpu, 0, cat({ k_set_pcide, pcid_cr3, k_ud2 })), 6);
    EXPECT_TRUE(cpu->state().cr4 & x86::k_cr4_pcide);
    EXPECT_EQ(cpu->state().gpr[x86::k_rdx], cr3 | 7);
    // Without PCIDE, bit 63 is above MAXPHYADDR: #GP.
    EXPECT_EQ(run(host, *cpu, 0, cat({ pcid_cr3, k_ud2 })), 13);
    // qemu64 has no PCID: CR4.PCIDE is reserved.
    auto q = make_cpu(host, "qemu64");
    EXPECT_EQ(run(host, *q, 0, cat({ k_set_pcide, k_ud2 })), 13);
}

TEST(InterpPcid, InvpcidChecks)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    auto code = cat({ k_invpcid, k_ud2 });
    put_desc(host, 0, 0x400000);
    for (uint64_t type = 0; type < 4; type++)
        EXPECT_EQ(run(host, *cpu, 0, code, 0, type), 6) << type; // reaches the UD2
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 4), 13); // type > 3
    EXPECT_EQ(run(host, *cpu, 3, code, 0, 0), 13); // CPL 3
    put_desc(host, 1ull << 12, 0x400000); // reserved descriptor bits
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 2), 13);
    put_desc(host, 0, 0x0000800000000000ull); // non-canonical address, type 0
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 0), 13);
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 2), 6); // the address only matters for type 0
    put_desc(host, 3, 0x400000); // PCID 3 without CR4.PCIDE: types 0 and 1 #GP
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 1), 13);
    EXPECT_EQ(run(host, *cpu, 0, code, 0, 3), 6);
    EXPECT_EQ(run(host, *cpu, 0, cat({ k_set_pcide, code })), 6); // with PCIDE: fine (type 0)
    // Register form and qemu64: #UD.
    EXPECT_EQ(run(host, *cpu, 0, { 0x66, 0x0f, 0x38, 0x82, 0xc8, 0x0f, 0x0b }), 6);
    EXPECT_EQ(cpu->state().rip, 0x80000u + 6 * 16 + 1);
    auto q = make_cpu(host, "qemu64");
    put_desc(host, 0, 0x400000);
    EXPECT_EQ(run(host, *q, 0, cat({ k_invpcid, { 0xf4 } }), 0, 2), 6);
}

TEST(InterpPcid, InvpcidFlushesTranslations)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    host.ram(0x400000)[0] = 0x11;
    host.ram(0x600000)[0] = 0x22;
    // mov al, [0x400000]; mov [pd + 2*8], rdx (remap 0x400000 -> 0x600000);
    // mov bl, [0x400000] (stale TLB entry still maps the old page);
    // invpcid rcx(=0), [desc]; mov dl, [0x400000]; hlt
    uint64_t pde_slot = k_pd + 2 * 8;
    std::vector<uint8_t> code = { 0x8a, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0x48, 0x89, 0x14, 0x25 };
    for (unsigned i = 0; i < 4; i++)
        code.push_back(uint8_t(pde_slot >> (8 * i)));
    for (uint8_t b : { 0x8a, 0x1c, 0x25, 0x00, 0x00, 0x40, 0x00 })
        code.push_back(b);
    code.insert(code.end(), k_invpcid.begin(), k_invpcid.end());
    for (uint8_t b : { 0x8a, 0x14, 0x25, 0x00, 0x00, 0x40, 0x00, 0xf4 })
        code.push_back(b);
    put_desc(host, 0, 0x400000);
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    host.write(k_code, code);
    cpu->invalidate_code(k_code, code.size());
    x86::CpuState& s = cpu->state();
    s.rip = k_code;
    s.gpr[x86::k_rbx] = k_desc;
    s.gpr[x86::k_rcx] = 0;
    s.gpr[x86::k_rdx] = 0x600000 | 0x83;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(50);
    EXPECT_TRUE(s.halted);
    EXPECT_EQ(delivered_vector(s), -1);
    EXPECT_EQ(s.gpr[x86::k_rax] & 0xff, 0x11u);
    EXPECT_EQ(s.gpr[x86::k_rdx] & 0xff, 0x22u); // after INVPCID: the new mapping
}
