// A VM moves between accelerators mid-run: a payload starts under one,
// its CPU state (and the same guest RAM) moves to the other, which
// finishes it. The end must equal what a run under one accelerator gives
// (the payload's documented expectations, port writes included).
#include <algorithm>
#include <cstdio>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/accel/payloads.h"

namespace kiln::test {
namespace {

namespace interp = accel::interp;

// Split points: 2 = inside STI's interrupt shadow, 3 = halted in HLT
// (hlt_timer: KVM must wait, then take the timer's interrupt at once),
// 5 = inside an interrupt handler.
const std::vector<std::string> k_payloads = {"real_mode_pio", "real_to_long_mode", "protected_mode_mmio",
                                             "interrupt_idt", "real_mode_irq", "hlt_timer"};

class HandoffTest : public ::testing::TestWithParam<std::tuple<std::string, int>> { };

// The payload run by the interpreter alone: the state a handoff must reach.
x86::CpuState interpreter_alone(const Payload& p)
{
    auto host = make_payload_host(p);
    auto model = x86::CpuModel::by_name("qemu64");
    EXPECT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(*host, *model);
    EXPECT_TRUE(cpu.ok());
    if (!cpu.ok())
        return {};
    (*cpu)->state() = p.initial;
    EXPECT_EQ((*cpu)->run(1'000'000), interp::RunExit::Stopped);
    return (*cpu)->state();
}

// A payload run across a handoff: the guest (its host holds the RAM and
// the device records) and the CPU state at the end.
struct HandedOff {
    KvmGuest guest;
    x86::CpuState end;
};

std::unique_ptr<interp::Interpreter> interpreter_for(FakeVcpuHost& host)
{
    auto model = x86::CpuModel::by_name("qemu64");
    EXPECT_TRUE(model.ok());
    if (!model.ok())
        return nullptr;
    auto cpu = interp::Interpreter::create(host, *model);
    EXPECT_TRUE(cpu.ok());
    return cpu.ok() ? std::move(cpu).value() : nullptr;
}

// The interpreter runs `budget` instructions of `p`, then KVM to the end.
HandedOff interpreter_then_kvm(const Payload& p, uint64_t budget)
{
    HandedOff h { guest_for(p), {} };
    auto cpu = h.guest.vcpu ? interpreter_for(*h.guest.host) : nullptr;
    if (!cpu)
        return h;
    cpu->state() = p.initial;
    EXPECT_EQ(cpu->run(budget), interp::RunExit::Budget) << "the payload ended before the handoff";
    EXPECT_TRUE(h.guest.vcpu->set_state(cpu->state()).ok());
    TimedRun r = run_with_limit(*h.guest.vcpu);
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exit.ok()) << (r.exit.ok() ? "" : r.exit.error().message());
    auto end = h.guest.vcpu->get_state();
    EXPECT_TRUE(end.ok());
    if (end.ok())
        h.end = *end;
    return h;
}

// KVM runs `p` up to its first port write, then the interpreter to the end
// (KVM completed the OUT first).
HandedOff kvm_then_interpreter(const Payload& p)
{
    HandedOff h { guest_for(p), {} };
    KvmGuest& g = h.guest;
    if (!g.vcpu)
        return h;
    g.host->on_pio_write = [&g] {
        g.vcpu->kick();
        g.host->on_pio_write = nullptr;
    };
    TimedRun r = run_with_limit(*g.vcpu);
    g.host->on_pio_write = nullptr;
    EXPECT_TRUE(r.exit.ok() && *r.exit == accel::VcpuExit::Kicked)
        << (r.exit.ok() ? accel::vcpu_exit_name(*r.exit) : r.exit.error().message());
    auto mid = g.vcpu->get_state();
    EXPECT_TRUE(mid.ok());
    auto cpu = interpreter_for(*g.host);
    if (!mid.ok() || !cpu)
        return h;
    cpu->state() = *mid;
    EXPECT_EQ(cpu->run(1'000'000), interp::RunExit::Stopped);
    h.end = cpu->state();
    return h;
}

// The interpreter runs `budget` instructions, then KVM continues.
TEST_P(HandoffTest, InterpreterThenKvm)
{
    KILN_REQUIRE_KVM();
    const Payload& p = payload(std::get<0>(GetParam()));
    HandedOff h = interpreter_then_kvm(p, uint64_t(std::get<1>(GetParam())));
    ASSERT_TRUE(h.guest.vcpu);
    check_payload_result(p, *h.guest.host, h.end);
    expect_same_architectural_state(interpreter_alone(p), h.end);
}

// KVM runs until the guest's first port write, then the interpreter.
TEST_P(HandoffTest, KvmThenInterpreter)
{
    KILN_REQUIRE_KVM();
    if (std::get<1>(GetParam()) != 2)
        GTEST_SKIP() << "one split point is enough in this direction";
    const Payload& p = payload(std::get<0>(GetParam()));
    if (p.pio_writes.size() < 2)
        GTEST_SKIP() << "payload has no port write to split at";
    HandedOff h = kvm_then_interpreter(p);
    ASSERT_TRUE(h.guest.vcpu);
    check_payload_result(p, *h.guest.host, h.end);
    expect_same_architectural_state(interpreter_alone(p), h.end);
}

// KVM stops in hlt_timer's first HLT (no timer yet), the interpreter takes
// the halted CPU, the timer fires there: the handler must see the frame of
// an interrupt taken in that HLT (return EIP just past it).
TEST(Handoff, KvmHaltedThenInterpreterTakesTheTimer)
{
    KILN_REQUIRE_KVM();
    Payload p = payload("hlt_timer");
    Payload no_timer = p;
    no_timer.timer_vector.reset();
    KvmGuest g = guest_for(no_timer);
    ASSERT_TRUE(g.vcpu);
    TimedRun r = run_with_limit(*g.vcpu);
    ASSERT_TRUE(r.exit.ok()) << r.exit.error().message();
    ASSERT_EQ(*r.exit, accel::VcpuExit::Stopped);
    auto mid = g.vcpu->get_state();
    ASSERT_TRUE(mid.ok());
    EXPECT_TRUE(mid->halted);
    EXPECT_EQ(mid->rip, 0x1004u);
    EXPECT_TRUE(mid->rflags & x86::k_flag_if);

    g.host->arm_timer(*p.timer_vector);
    auto model = x86::CpuModel::by_name("qemu64");
    ASSERT_TRUE(model.ok());
    auto cpu = interp::Interpreter::create(*g.host, *model);
    ASSERT_TRUE(cpu.ok());
    (*cpu)->state() = *mid;
    EXPECT_EQ((*cpu)->run(1'000'000), interp::RunExit::Stopped);
    check_payload_result(p, *g.host, (*cpu)->state());
    expect_same_architectural_state(interpreter_alone(p), (*cpu)->state());
}

// clang-format off
const std::vector<uint8_t> k_rdtsc_twice = {   // real mode
    0x0f, 0x31,                                 // 1000: rdtsc
    0x66, 0x89, 0xc3,                           // 1002: mov ebx,eax
    0x66, 0x89, 0xd1,                           // 1005: mov ecx,edx
    0xe6, 0x80,                                 // 1008: out 0x80,al   (the handoff point)
    0x0f, 0x31,                                 // 100a: rdtsc
    0xf4,                                       // 100c: hlt
};
// clang-format on

uint64_t tsc_before(const x86::CpuState& s) { return (s.gpr[x86::k_rcx] << 32) | (s.gpr[x86::k_rbx] & 0xffffffff); }
uint64_t tsc_after(const x86::CpuState& s)
{
    return ((s.gpr[x86::k_rdx] & 0xffffffff) << 32) | (s.gpr[x86::k_rax] & 0xffffffff);
}

Payload rdtsc_payload()
{
    Payload p;
    p.name = "rdtsc_twice";
    p.memory = { { 0x1000, k_rdtsc_twice } };
    p.initial = real_mode_state(0x1000);
    p.initial.msr.tsc_offset = 5'000'000'000'000; // a guest that has run for a while
    return p;
}

// The TSC must not go backwards when the CPU changes accelerator, whatever
// rate KVM's TSC runs at.
TEST(Handoff, TscKeepsGoingForwardFromKvmToTheInterpreter)
{
    KILN_REQUIRE_KVM();
    HandedOff h = kvm_then_interpreter(rdtsc_payload());
    std::printf("[ info ] TSC under KVM %llu, then under the interpreter %llu\n",
        (unsigned long long)tsc_before(h.end), (unsigned long long)tsc_after(h.end));
    EXPECT_GE(tsc_after(h.end), tsc_before(h.end));
}

TEST(Handoff, TscKeepsGoingForwardFromTheInterpreterToKvm)
{
    KILN_REQUIRE_KVM();
    HandedOff h = interpreter_then_kvm(rdtsc_payload(), 3);
    ASSERT_TRUE(h.guest.accel);
    std::printf("[ info ] TSC under the interpreter %llu, then under KVM %llu\n",
        (unsigned long long)tsc_before(h.end), (unsigned long long)tsc_after(h.end));
    if (!h.guest.accel->device().hardware_virtualization() && tsc_after(h.end) < tsc_before(h.end) / 2)
        GTEST_SKIP() << "this host's KVM runs the guest on the host's TSC and ignores the TSC Kiln writes";
    EXPECT_GE(tsc_after(h.end), tsc_before(h.end));
}

// x87 and SSE registers move between accelerators. The KVM side uses
// FXSAVE/FXRSTOR: this host's KVM emulates every instruction of a non-PVM
// guest and its emulator has no x87 arithmetic, but it has those two.
// clang-format off
const std::vector<uint8_t> k_fpu_load_then_fxsave = { // 64-bit
    0x0f, 0x28, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, // 1000: movaps xmm0,[0x9000]  (interpreter)
    0xd9, 0xe8,                                     // 1008: fld1
    0xd9, 0xeb,                                     // 100a: fldpi
    0x0f, 0xae, 0x04, 0x25, 0x00, 0x91, 0x00, 0x00, // 100c: fxsave [0x9100]        (KVM)
    0xf4,                                           // 1014: hlt
};
const std::vector<uint8_t> k_fxrstor_then_store = {
    0x0f, 0xae, 0x0c, 0x25, 0x00, 0x91, 0x00, 0x00, // 1000: fxrstor [0x9100]       (KVM)
    0xe6, 0x80,                                     // 1008: out 0x80,al  (the handoff point)
    0x0f, 0x29, 0x04, 0x25, 0x20, 0x90, 0x00, 0x00, // 100a: movaps [0x9020],xmm0  (interpreter)
    0xdd, 0x1c, 0x25, 0x30, 0x90, 0x00, 0x00,       // 1012: fstp QWORD PTR [0x9030]  (pi)
    0xdd, 0x1c, 0x25, 0x38, 0x90, 0x00, 0x00,       // 1019: fstp QWORD PTR [0x9038]  (1.0)
    0xf4,                                           // 1020: hlt
};
// clang-format on

std::vector<uint8_t> xmm_pattern()
{
    std::vector<uint8_t> v(16);
    for (unsigned i = 0; i < 16; i++)
        v[i] = uint8_t(0xa0 + i);
    return v;
}

// 80-bit pi and 1.0 as FXSAVE keeps them in ST0/ST1 (16-byte slots).
void put_st(std::vector<uint8_t>& image, unsigned slot, uint64_t mantissa, uint16_t exponent)
{
    for (int i = 0; i < 8; i++)
        image[32 + 16 * slot + i] = uint8_t(mantissa >> (8 * i));
    image[32 + 16 * slot + 8] = uint8_t(exponent);
    image[32 + 16 * slot + 9] = uint8_t(exponent >> 8);
}
constexpr uint64_t k_pi_mantissa = 0xc90fdaa22168c235ull, k_one_mantissa = 0x8000000000000000ull;

Payload fpu_payload(const std::vector<uint8_t>& code)
{
    Payload p = long_mode_payload(code);
    p.name = "fpu_sse";
    p.memory.push_back({ 0x9000, xmm_pattern() });
    p.initial.cr0 |= x86::k_cr0_mp;
    p.initial.cr4 |= x86::k_cr4_osfxsr | x86::k_cr4_osxmmexcpt;
    return p;
}

TEST(Handoff, FpuAndSseRegistersFromTheInterpreterToKvm)
{
    KILN_REQUIRE_KVM();
    HandedOff h = interpreter_then_kvm(fpu_payload(k_fpu_load_then_fxsave), 3); // MOVAPS, FLD1, FLDPI
    ASSERT_TRUE(h.guest.vcpu);
    std::vector<uint8_t> image(512);
    ASSERT_TRUE(h.guest.host->memory().read(0x9100, image.data(), image.size()).ok());
    std::vector<uint8_t> want = image;
    put_st(want, 0, k_pi_mantissa, 0x4000);
    put_st(want, 1, k_one_mantissa, 0x3fff);
    std::copy_n(xmm_pattern().begin(), 16, want.begin() + 160);
    EXPECT_EQ(image, want) << "ST0, ST1 or XMM0 in KVM's FXSAVE image";
    EXPECT_EQ((image[3] << 8 | image[2]) >> 11 & 7, 6) << "FSW.TOP after two loads";
    EXPECT_EQ(image[4], 0xc0) << "FTW: physical registers 6 and 7 in use";
}

TEST(Handoff, FpuAndSseRegistersFromKvmToTheInterpreter)
{
    KILN_REQUIRE_KVM();
    Payload p = fpu_payload(k_fxrstor_then_store);
    std::vector<uint8_t> image(512, 0);
    image[0] = 0x7f; // FCW 0x037f
    image[1] = 0x03;
    image[3] = 6 << 3; // FSW.TOP = 6
    image[4] = 0xc0; // FTW
    image[24] = 0x80; // MXCSR 0x1f80
    image[25] = 0x1f;
    put_st(image, 0, k_pi_mantissa, 0x4000);
    put_st(image, 1, k_one_mantissa, 0x3fff);
    std::copy_n(xmm_pattern().begin(), 16, image.begin() + 160);
    p.memory.push_back({ 0x9100, image });
    HandedOff h = kvm_then_interpreter(p);
    ASSERT_TRUE(h.guest.vcpu);
    std::vector<uint8_t> want = xmm_pattern();
    for (uint64_t v : { 0x400921fb54442d18ull /* pi */, 0x3ff0000000000000ull /* 1.0 */ })
        for (int i = 0; i < 8; i++)
            want.push_back(uint8_t(v >> (8 * i)));
    std::vector<uint8_t> got(want.size());
    ASSERT_TRUE(h.guest.host->memory().read(0x9020, got.data(), got.size()).ok());
    EXPECT_EQ(got, want) << "XMM0, ST0 and ST1 as the interpreter stored them";
}

// MSRs written under one accelerator are read under the other.
// clang-format off
const std::vector<uint8_t> k_msr_write_then_read = { // 64-bit
    0xb9, 0x82, 0x00, 0x00, 0xc0,   // 1000: mov ecx,0xc0000082 (LSTAR)
    0xb8, 0x67, 0x45, 0x23, 0x81,   // 1005: mov eax,0x81234567
    0xba, 0xff, 0xff, 0xff, 0xff,   // 100a: mov edx,0xffffffff  (canonical)
    0x0f, 0x30,                     // 100f: wrmsr
    0xb9, 0x77, 0x02, 0x00, 0x00,   // 1011: mov ecx,0x277 (PAT)
    0xb8, 0x06, 0x01, 0x07, 0x00,   // 1016: mov eax,0x00070106
    0xba, 0x06, 0x04, 0x07, 0x00,   // 101b: mov edx,0x00070406
    0x0f, 0x30,                     // 1020: wrmsr   (8 instructions)
    0xe6, 0x80,                     // 1022: out 0x80,al  (the KVM -> interpreter handoff)
    0xb9, 0x82, 0x00, 0x00, 0xc0,   // 1024: mov ecx,0xc0000082
    0x0f, 0x32,                     // 1029: rdmsr
    0x49, 0x89, 0xc0,               // 102b: mov r8,rax
    0x49, 0x89, 0xd1,               // 102e: mov r9,rdx
    0xb9, 0x77, 0x02, 0x00, 0x00,   // 1031: mov ecx,0x277
    0x0f, 0x32,                     // 1036: rdmsr
    0xf4,                           // 1038: hlt
};
// clang-format on

// Debug registers likewise (DR7 with L0 on a breakpoint never reached).
// clang-format off
const std::vector<uint8_t> k_dr_write_then_read = { // 64-bit
    0x48, 0xb8, 0x00, 0x90, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, // 1000: movabs rax,0x123456789000
    0x0f, 0x23, 0xc0,               // 100a: mov dr0,rax
    0xb8, 0x01, 0x04, 0x00, 0x00,   // 100d: mov eax,0x401
    0x0f, 0x23, 0xf8,               // 1012: mov dr7,rax   (4 instructions)
    0xe6, 0x80,                     // 1015: out 0x80,al   (the KVM -> interpreter handoff)
    0x0f, 0x21, 0xc1,               // 1017: mov rcx,dr0
    0x0f, 0x21, 0xfa,               // 101a: mov rdx,dr7
    0xf4,                           // 101d: hlt
};
// clang-format on

void expect_drs_read_back(const x86::CpuState& s)
{
    EXPECT_EQ(s.gpr[x86::k_rcx], 0x123456789000u);
    EXPECT_EQ(s.gpr[x86::k_rdx] & 0xffffffff, 0x401u);
    EXPECT_EQ(s.dr[0], 0x123456789000u);
    EXPECT_EQ(s.dr[7] & 0xffffffff, 0x401u);
}

void expect_msrs_read_back(const x86::CpuState& s)
{
    EXPECT_EQ(s.gpr[x86::k_r8], 0x81234567u);
    EXPECT_EQ(s.gpr[x86::k_r9], 0xffffffffu);
    EXPECT_EQ(s.gpr[x86::k_rax], 0x00070106u);
    EXPECT_EQ(s.gpr[x86::k_rdx], 0x00070406u);
}

TEST(Handoff, MsrsFromTheInterpreterToKvm)
{
    KILN_REQUIRE_KVM();
    expect_msrs_read_back(interpreter_then_kvm(long_mode_payload(k_msr_write_then_read), 8).end);
}

TEST(Handoff, MsrsFromKvmToTheInterpreter)
{
    KILN_REQUIRE_KVM();
    expect_msrs_read_back(kvm_then_interpreter(long_mode_payload(k_msr_write_then_read)).end);
}

TEST(Handoff, DebugRegistersFromTheInterpreterToKvm)
{
    KILN_REQUIRE_KVM();
    expect_drs_read_back(interpreter_then_kvm(long_mode_payload(k_dr_write_then_read), 4).end);
}

TEST(Handoff, DebugRegistersFromKvmToTheInterpreter)
{
    KILN_REQUIRE_KVM();
    expect_drs_read_back(kvm_then_interpreter(long_mode_payload(k_dr_write_then_read)).end);
}

INSTANTIATE_TEST_SUITE_P(Payloads, HandoffTest,
                         ::testing::Combine(::testing::ValuesIn(k_payloads), ::testing::Values(2, 3, 5)),
                         [](const auto& info) {
                             return std::get<0>(info.param) + "_after_" + std::to_string(std::get<1>(info.param));
                         });

} // namespace
} // namespace kiln::test
