// XSAVE state management, VEX/BMI gating and CPUID coherence in the
// interpreter: the #UD/#GP/#NM rules the oracle cannot reach from user mode
// (XSETBV, CR4.OSXSAVE, XCR0 validity, CPL), XRSTOR's init semantics, the
// CPU models' leaf 0xD, and that qemu64 offers none of the new features.
#include <cpuid.h>
#include <cstring>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_code = 0x100000;
constexpr uint64_t k_area = 0x200000;

std::unique_ptr<interp::Interpreter> make_cpu(FakeHost& host, const char* model_name = "max")
{
    auto cpu = make_interpreter(host, model_name);
    EXPECT_TRUE(cpu);
    return cpu;
}

bool host_has_xsave()
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & x86::k_cpuid1_ecx_xsave);
}

struct Regs {
    uint64_t rax = 0, rcx = 0, rdx = 0;
};

// Fresh 64-bit machine at `cpl`, CR4.OSXSAVE as asked; runs `code` (which
// should end in UD2) and returns the vector delivered.
int run(FakeHost& host, interp::Interpreter& cpu, unsigned cpl, bool osxsave, std::vector<uint8_t> code,
    Regs regs = {})
{
    cpu.reset(x86::ResetKind::PowerOn);
    setup_long_mode(cpu, host, cpl);
    x86::CpuState& s = cpu.state();
    if (osxsave)
        s.cr4 |= x86::k_cr4_osxsave;
    host.write(k_code, code);
    cpu.invalidate_code(k_code, code.size());
    s.rip = k_code;
    s.gpr[x86::k_rax] = regs.rax;
    s.gpr[x86::k_rcx] = regs.rcx;
    s.gpr[x86::k_rdx] = regs.rdx;
    s.gpr[x86::k_rbx] = k_area;
    s.gpr[x86::k_rsp] = cpl == 3 ? 0x180000 : 0x8000;
    cpu.run(50);
    return delivered_vector(s);
}

// RIP of the faulting instruction in a CPL 3 -> 0 exception frame.
uint64_t user_fault_rip(FakeHost& host)
{
    uint64_t v;
    std::memcpy(&v, host.ram(k_kernel_stack - 40), 8);
    return v;
}

const std::vector<uint8_t> k_xsetbv = { 0x0f, 0x01, 0xd1, 0x0f, 0x0b };
const std::vector<uint8_t> k_xgetbv = { 0x0f, 0x01, 0xd0, 0x0f, 0x0b };

} // namespace

TEST(InterpXsave, CpuidModelsAreCoherent)
{
    auto qemu64 = x86::CpuModel::by_name("qemu64").value();
    EXPECT_FALSE(qemu64.has_xsave());
    EXPECT_EQ(qemu64.features7_ebx() & (x86::k_cpuid7_ebx_bmi1 | x86::k_cpuid7_ebx_bmi2 | x86::k_cpuid7_ebx_adx), 0u);
    EXPECT_EQ(qemu64.features1_ecx() & x86::k_cpuid1_ecx_movbe, 0u);
    x86::CpuidResult d0 = qemu64.query(0xd, 0, 0, false);
    EXPECT_EQ(d0.eax | d0.ebx | d0.ecx | d0.edx, 0u);

    auto max = x86::CpuModel::by_name("max").value();
    unsigned a = 0, b = 0, c = 0, d = 0;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    EXPECT_EQ(max.features7_ebx() & x86::k_cpuid7_ebx_bmi2, b & x86::k_cpuid7_ebx_bmi2);
    EXPECT_EQ(max.features7_ebx() & x86::k_cpuid7_ebx_adx, b & x86::k_cpuid7_ebx_adx);
    EXPECT_EQ(max.has_xsave(), host_has_xsave());
    EXPECT_TRUE(max.features7_ebx() & x86::k_cpuid7_ebx_fpcsds); // FCS/FDS saved as 0, as the x87 code does
    if (!max.has_xsave())
        GTEST_SKIP() << "host without XSAVE";
    // x87 | SSE only, both inside the 576-byte legacy region + header.
    d0 = max.query(0xd, 0, 0, true);
    EXPECT_EQ(d0.eax, 3u);
    EXPECT_EQ(d0.edx, 0u);
    EXPECT_EQ(d0.ebx, 576u);
    EXPECT_EQ(d0.ecx, 576u);
    x86::CpuidResult d1 = max.query(0xd, 1, 0, true);
    EXPECT_EQ(d1.eax & x86::k_xsave_d1_xsaves, 0u); // no XSAVES/XRSTORS
    for (uint32_t sub = 2; sub < 64; sub++) {
        x86::CpuidResult r = max.query(0xd, sub, 0, true);
        EXPECT_EQ(r.eax | r.ebx | r.ecx | r.edx, 0u) << sub;
    }
    // Leaf 1 mirrors CR4.OSXSAVE; AVX is never offered.
    EXPECT_TRUE(max.query(1, 0, 0, true).ecx & x86::k_cpuid1_ecx_osxsave);
    EXPECT_FALSE(max.query(1, 0, 0, false).ecx & x86::k_cpuid1_ecx_osxsave);
    EXPECT_FALSE(max.query(1, 0, 0, true).ecx & (1u << 28));
}

TEST(InterpXsave, XsetbvFaults)
{
    if (!host_has_xsave())
        GTEST_SKIP() << "host without XSAVE";
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    // CR4.OSXSAVE clear: #UD for XSETBV and XGETBV.
    EXPECT_EQ(run(host, *cpu, 0, false, k_xsetbv, { 3, 0, 0 }), 6);
    EXPECT_EQ(run(host, *cpu, 0, false, k_xgetbv), 6);
    // CPL 3: #GP(0).
    EXPECT_EQ(run(host, *cpu, 3, true, k_xsetbv, { 3, 0, 0 }), 13);
    // ECX other than 0 (XCR0), x87 clear, SSE-less AVX, AVX, high bits: #GP(0).
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 3, 1, 0 }), 13);
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 2, 0, 0 }), 13);
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 5, 0, 0 }), 13);
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 7, 0, 0 }), 13);
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 3, 0, 1 }), 13);
    EXPECT_EQ(cpu->state().xsave.xcr0, 1u); // nothing changed
    // Valid: x87 | SSE, read back by XGETBV (also from CPL 3).
    EXPECT_EQ(run(host, *cpu, 0, true, k_xsetbv, { 3, 0, 0 }), 6); // the UD2 after it
    EXPECT_EQ(cpu->state().xsave.xcr0, 3u);
    cpu->state().gpr[x86::k_rcx] = 0;
    EXPECT_EQ(run(host, *cpu, 3, true, k_xgetbv), 6);
    EXPECT_EQ(cpu->state().gpr[x86::k_rax], 1u); // reset: XCR0 = x87 only
    // XGETBV ECX=1 (XINUSE) when offered, else #GP; ECX=2: #GP.
    bool xgetbv1 = cpu->model().query(0xd, 1, 0, true).eax & x86::k_xsave_d1_xgetbv1;
    EXPECT_EQ(run(host, *cpu, 3, true, k_xgetbv, { 0, 1, 0 }), xgetbv1 ? 6 : 13);
    if (xgetbv1) {
        EXPECT_EQ(cpu->state().gpr[x86::k_rax], 1u);
    }
    EXPECT_EQ(run(host, *cpu, 3, true, k_xgetbv, { 0, 2, 0 }), 13);
}

TEST(InterpXsave, Cr4OsxsaveNeedsTheFeature)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host, "qemu64");
    // mov rax, cr4; bts rax, 18; mov cr4, rax; ud2
    std::vector<uint8_t> code = { 0x0f, 0x20, 0xe0, 0x48, 0x0f, 0xba, 0xe8, 0x12, 0x0f, 0x22, 0xe0, 0x0f, 0x0b };
    EXPECT_EQ(run(host, *cpu, 0, false, code), 13);
    EXPECT_EQ(run(host, *cpu, 0, false, k_xgetbv), 6);
    if (!host_has_xsave())
        return;
    auto max = make_cpu(host);
    EXPECT_EQ(run(host, *max, 0, false, code), 6);
    EXPECT_TRUE(max->state().cr4 & x86::k_cr4_osxsave);
}

TEST(InterpXsave, XsaveXrstorFaultsAndInit)
{
    if (!host_has_xsave())
        GTEST_SKIP() << "host without XSAVE";
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    const std::vector<uint8_t> xsave = { 0x0f, 0xae, 0x23, 0x0f, 0x0b }; // xsave [rbx]
    const std::vector<uint8_t> xrstor = { 0x0f, 0xae, 0x2b, 0x0f, 0x0b }; // xrstor [rbx]
    // Without CR4.OSXSAVE: #UD; with CR0.TS: #NM.
    EXPECT_EQ(run(host, *cpu, 0, false, xsave, { 3, 0, 0 }), 6);
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    cpu->state().cr0 |= x86::k_cr0_ts;
    cpu->state().cr4 |= x86::k_cr4_osxsave;
    host.write(k_code, xsave);
    cpu->invalidate_code(k_code, xsave.size());
    cpu->state().rip = k_code;
    cpu->state().gpr[x86::k_rbx] = k_area;
    cpu->state().gpr[x86::k_rsp] = 0x8000;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(cpu->state()), 7);
    // Misaligned area (16 but not 64 bytes): #GP.
    std::vector<uint8_t> misaligned = { 0x0f, 0xae, 0x63, 0x10, 0x0f, 0x0b }; // xsave [rbx+16]
    EXPECT_EQ(run(host, *cpu, 0, true, misaligned, { 3, 0, 0 }), 13);

    // XSAVE writes the legacy region and XSTATE_BV, then XRSTOR with
    // XSTATE_BV = 0 puts both components in their init state.
    std::vector<uint8_t> zero(576, 0);
    host.write(k_area, zero);
    cpu->reset(x86::ResetKind::PowerOn);
    setup_long_mode(*cpu, host, 0);
    x86::CpuState& s = cpu->state();
    s.cr4 |= x86::k_cr4_osxsave;
    s.xsave.xcr0 = 3;
    s.fpu.xmm[3].q[0] = 0x1234;
    s.fpu.fcw = 0x27f;
    s.fpu.mxcsr = 0x3f80;
    host.write(k_code, xsave);
    cpu->invalidate_code(k_code, xsave.size());
    s.rip = k_code;
    s.gpr[x86::k_rax] = 3;
    s.gpr[x86::k_rdx] = 0;
    s.gpr[x86::k_rbx] = k_area;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 6);
    uint64_t bv;
    std::memcpy(&bv, host.ram(k_area + 512), 8);
    EXPECT_EQ(bv, 3u);
    uint64_t x3;
    std::memcpy(&x3, host.ram(k_area + 160 + 3 * 16), 8);
    EXPECT_EQ(x3, 0x1234u);
    // XRSTOR RFBM = x87|SSE with XSTATE_BV = SSE only: x87 initialised,
    // XMM and MXCSR loaded.
    uint64_t sse_only = 2;
    std::memcpy(host.ram(k_area + 512), &sse_only, 8);
    s.fpu.xmm[3].q[0] = 0;
    s.fpu.mxcsr = 0x1f80;
    host.write(k_code, xrstor);
    cpu->invalidate_code(k_code, xrstor.size());
    s.rip = k_code;
    s.halted = false;
    s.gpr[x86::k_rax] = 3;
    s.gpr[x86::k_rsp] = 0x8000;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 6);
    EXPECT_EQ(s.fpu.fcw, 0x37fu);
    EXPECT_EQ(s.fpu.xmm[3].q[0], 0x1234u);
    EXPECT_EQ(s.fpu.mxcsr, 0x3f80u);
    // XSTATE_BV with a bit outside XCR0 (AVX): #GP, nothing loaded.
    uint64_t avx = 4;
    std::memcpy(host.ram(k_area + 512), &avx, 8);
    s.rip = k_code;
    s.halted = false;
    s.gpr[x86::k_rsp] = 0x8000;
    s.fpu.fcw = 0x7f;
    cpu->run(10);
    EXPECT_EQ(delivered_vector(s), 13);
    EXPECT_EQ(s.fpu.fcw, 0x7fu);
    // XSAVES/XRSTORS are not offered: #UD.
    EXPECT_EQ(run(host, *cpu, 0, true, { 0x0f, 0xc7, 0x2b, 0x0f, 0x0b }, { 3, 0, 0 }), 6);
    EXPECT_EQ(run(host, *cpu, 0, true, { 0x0f, 0xc7, 0x1b, 0x0f, 0x0b }, { 3, 0, 0 }), 6);
}

TEST(InterpXsave, VexGating)
{
    FakeHost host(16ull << 20);
    // AVX (vpaddd xmm0, xmm1, xmm2) is never offered: #UD even with OSXSAVE.
    auto max = make_cpu(host);
    EXPECT_EQ(run(host, *max, 3, true, { 0xc5, 0xf1, 0xfe, 0xc2, 0x0f, 0x0b }), 6);
    EXPECT_EQ(user_fault_rip(host), k_code); // the VEX instruction, not the UD2 after it
    // ANDN eax, ebx, ecx needs BMI1 only (no OSXSAVE): runs under max when
    // the host has BMI1, #UD under qemu64.
    std::vector<uint8_t> andn = { 0xc4, 0xe2, 0x60, 0xf2, 0xc1, 0x0f, 0x0b };
    bool bmi1 = max->model().features7_ebx() & x86::k_cpuid7_ebx_bmi1;
    if (bmi1) {
        EXPECT_EQ(run(host, *max, 3, false, andn, { 0, 0xf0f0, 0 }), 6);
        EXPECT_EQ(user_fault_rip(host), k_code + 5);
        EXPECT_EQ(max->state().gpr[x86::k_rax], 0xf0f0u); // ~ebx (0x200000) & ecx
    }
    auto qemu64 = make_cpu(host, "qemu64");
    EXPECT_EQ(run(host, *qemu64, 3, false, andn), 6);
    // MOVBE eax, [rbx] and ADCX eax, ebx under qemu64: #UD.
    EXPECT_EQ(run(host, *qemu64, 0, false, { 0x0f, 0x38, 0xf0, 0x03, 0x0f, 0x0b }), 6);
    EXPECT_EQ(run(host, *qemu64, 0, false, { 0x66, 0x0f, 0x38, 0xf6, 0xc3, 0x0f, 0x0b }), 6);
}

TEST(InterpXsave, X87InstructionPointersInFxsave)
{
    // FIP/FOP (and FDP for memory operands) name the last non-control x87
    // instruction, in the 64-bit FXSAVE format; FLDCW (control) keeps them.
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    double one = 1.0;
    std::memcpy(host.ram(k_area + 8), &one, 8);
    uint16_t cw = 0x37f;
    std::memcpy(host.ram(k_area + 16), &cw, 2);
    std::vector<uint8_t> code = {
        0xdd, 0x43, 0x08, // +0: fld qword [rbx+8]
        0xd9, 0x6b, 0x10, // +3: fldcw [rbx+16]
        0x48, 0x0f, 0xae, 0x43, 0x40, // +6: fxsave64 [rbx+0x40]
        0xd8, 0xc0, // +11: fadd st0, st0
        0x48, 0x0f, 0xae, 0x83, 0x00, 0x04, 0x00, 0x00, // +13: fxsave64 [rbx+0x400]
        0x0f, 0x0b,
    };
    EXPECT_EQ(run(host, *cpu, 0, false, code), 6);
    auto get = [&](uint64_t gpa, unsigned n) {
        uint64_t v = 0;
        std::memcpy(&v, host.ram(gpa), n);
        return v;
    };
    EXPECT_EQ(get(k_area + 0x40 + 6, 2), 0x543u); // FOP: (DD & 7) << 8 | ModRM 43
    EXPECT_EQ(get(k_area + 0x40 + 8, 8), k_code); // FIP: the FLD, not the FLDCW
    EXPECT_EQ(get(k_area + 0x40 + 16, 8), k_area + 8); // FDP: its operand
    EXPECT_EQ(get(k_area + 0x400 + 6, 2), 0x0c0u); // FADD ST0, ST0
    EXPECT_EQ(get(k_area + 0x400 + 8, 8), k_code + 11);
}

TEST(InterpXsave, FxsaveWithTsOrEmIsDeviceNotAvailable)
{
    FakeHost host(16ull << 20);
    auto cpu = make_cpu(host);
    for (uint64_t bit : { x86::k_cr0_ts, x86::k_cr0_em }) {
        cpu->reset(x86::ResetKind::PowerOn);
        setup_long_mode(*cpu, host, 0);
        cpu->state().cr0 |= bit;
        const std::vector<uint8_t> code = { 0x0f, 0xae, 0x03, 0x0f, 0x0b }; // fxsave [rbx]
        host.write(k_code, code);
        cpu->invalidate_code(k_code, code.size());
        cpu->state().rip = k_code;
        cpu->state().gpr[x86::k_rbx] = k_area;
        cpu->state().gpr[x86::k_rsp] = 0x8000;
        cpu->run(10);
        EXPECT_EQ(delivered_vector(cpu->state()), 7);
    }
}
