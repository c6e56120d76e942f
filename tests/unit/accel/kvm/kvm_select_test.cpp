// Choosing KVM from the command line: -accel kvm,device=PATH, the clear
// error when the device cannot be opened, QEMU-style fallback
// (-accel kvm -accel interp, -machine accel=kvm:tcg), -cpu host, which
// only KVM can provide, and how a guest's triple fault ends a kiln run.
#include <unistd.h>

#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "system/cli_parse.h"
#include "system/machine_config.h"
#include "system/vm.h"
#include "tests/unit/accel/kvm/kvm_test_support.h"
#include "tests/unit/hw/synthetic_kernel.h"

namespace kiln::system {
namespace {

Result<MachineConfig> config(std::vector<std::string> argv)
{
    argv.insert(argv.end(), { "-kernel", "unused" }); // required by the parser, never loaded here
    auto parsed = parse_args(argv);
    if (!parsed.ok())
        return parsed.error();
    return build_machine_config(parsed.value());
}

// Builds the board for `cfg` and creates its vCPU the way realize_vm does.
struct Board {
    std::unique_ptr<EventLoop> loop = EventLoop::create().value();
    std::unique_ptr<Vm> vm;
    std::string stderr_text;

    Result<std::unique_ptr<Vcpu>> create(MachineConfig cfg)
    {
        cfg.ram_bytes = 16ull << 20;
        vm = TRY(build_vm(cfg, *loop, [](int) {}));
        ::testing::internal::CaptureStderr();
        auto v = create_vcpu(cfg, *vm->machine);
        stderr_text = ::testing::internal::GetCapturedStderr();
        return v;
    }
};

TEST(KvmSelect, DeviceOptionSetsThePath)
{
    auto c = config({ "-accel", "kvm,device=/nonexistent/kvm", "-accel", "interp" });
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->kvm_device, "/nonexistent/kvm");
    EXPECT_EQ(c->accels, (std::vector<AccelKind> { AccelKind::Kvm, AccelKind::Interp }));
    auto d = config({ "-accel", "kvm" });
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->kvm_device, "/dev/kvm");
    auto bad = config({ "-accel", "tcg,device=/dev/kvm" });
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find("option 'device' belongs to kvm only"), std::string::npos)
        << bad.error().message();
}

TEST(KvmSelect, CpuKvmclockFlag)
{
    for (auto [flag, on] : { std::pair { "-kvmclock", false }, { "kvmclock=off", false }, { "+kvmclock", true },
             { "kvmclock=on", true } }) {
        auto c = config({ "-enable-kvm", "-cpu", std::string("host,") + flag });
        ASSERT_TRUE(c.ok()) << flag << ": " << c.error().message();
        EXPECT_EQ(c->kvmclock, on) << flag;
        EXPECT_EQ(c->cpu_model, "host");
    }
    EXPECT_TRUE(config({ "-enable-kvm" })->kvmclock); // QEMU's default
    auto bad = config({ "-cpu", "host,-kvmclock,+avx512f" });
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "-cpu host,-kvmclock,+avx512f: CPU feature flags are not supported yet");
}

TEST(KvmSelect, MissingDeviceIsAClearError)
{
    auto c = config({ "-accel", "kvm,device=/nonexistent/kvm" });
    ASSERT_TRUE(c.ok());
    Board b;
    auto v = b.create(*c);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().message(), "-accel kvm: Could not access KVM kernel module: No such file or directory");
}

TEST(KvmSelect, NotAKvmDeviceIsAClearError)
{
    auto c = config({ "-enable-kvm", "-accel", "kvm,device=/dev/null" });
    ASSERT_TRUE(c.ok());
    Board b;
    auto v = b.create(*c);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().message().find("'/dev/null' is not a KVM device"), std::string::npos) << v.error().message();
}

TEST(KvmSelect, FallsBackToTheInterpreterAndSaysWhy)
{
    for (auto argv : { std::vector<std::string> { "-accel", "kvm,device=/nonexistent/kvm", "-accel", "tcg" },
             std::vector<std::string> { "-machine", "pc,accel=kvm:tcg", "-accel", "kvm,device=/nonexistent/kvm" } }) {
        auto c = config(argv);
        ASSERT_TRUE(c.ok()) << c.error().message();
        ASSERT_EQ(c->accels.front(), AccelKind::Kvm);
        Board b;
        auto v = b.create(*c);
        if (!v.ok() && v.error().kind() == ErrorKind::NotSupported)
            GTEST_SKIP() << v.error().message(); // no interpreter in this build
        ASSERT_TRUE(v.ok()) << v.error().message();
        EXPECT_STREQ((*v)->accel_name(), "interp");
        EXPECT_NE(b.stderr_text.find("-accel kvm: Could not access KVM kernel module: No such file or directory\n"),
            std::string::npos)
            << b.stderr_text;
        EXPECT_NE(b.stderr_text.find("falling back to tcg\n"), std::string::npos) << b.stderr_text;
    }
}

TEST(KvmSelect, CpuHostNeedsKvm)
{
    auto c = config({ "-accel", "kvm,device=/nonexistent/kvm", "-accel", "interp", "-cpu", "host" });
    ASSERT_TRUE(c.ok());
    Board b;
    auto v = b.create(*c);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().message(), "-cpu host: the 'host' CPU type can only be used with KVM");
    EXPECT_NE(b.stderr_text.find("falling back to interp"), std::string::npos) << b.stderr_text;
}

TEST(KvmSelect, CpuHostUnderKvm)
{
    KILN_REQUIRE_KVM();
    auto c = config({ "-enable-kvm", "-cpu", "host" });
    ASSERT_TRUE(c.ok());
    Board b;
    auto v = b.create(*c);
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_STREQ((*v)->accel_name(), "kvm");
    EXPECT_EQ(b.stderr_text.find("falling back"), std::string::npos);
}

struct KilnRun {
    int status = -1;
    std::string err;
};

// kiln -accel ACCEL -no-reboot on a PVH kernel (flat 32-bit) that runs
// `code`; COM1 goes to `serial_path` if given.
KilnRun run_pvh(const std::vector<uint8_t>& code, const std::string& serial_path = "", const char* accel = "kvm")
{
    KilnRun out;
    std::string kernel = "/tmp/kiln-kvm-tf-" + std::to_string(getpid()) + ".kernel";
    {
        auto k = hw::test::synthetic_vmlinux(true, code);
        std::ofstream f(kernel, std::ios::binary);
        f.write(reinterpret_cast<const char*>(k.data()), std::streamsize(k.size()));
    }
    auto c = config({ "-accel", accel, "-cpu", "qemu64", "-no-reboot", "-display", "none" });
    EXPECT_TRUE(c.ok()) << c.error().message();
    if (!c.ok())
        return out;
    c->kernel = kernel;
    c->ram_bytes = 32ull << 20;
    if (!serial_path.empty()) {
        chardev::ChardevSpec com1;
        com1.kind = chardev::ChardevKind::File;
        com1.path = serial_path;
        c->serials = { com1 };
    }
    auto loop = EventLoop::create().value();
    auto vm = build_vm(*c, *loop, [&](int) { loop->post([&] { loop->stop(); }); });
    EXPECT_TRUE(vm.ok()) << vm.error().message();
    if (!vm.ok())
        return out;
    auto realized = realize_vm(**vm);
    unlink(kernel.c_str());
    EXPECT_TRUE(realized.ok()) << realized.error().message();
    if (!realized.ok())
        return out;
    loop->add_timer_ns(60ull * 1000000000ull, [&] { loop->stop(); }); // the suite must not hang
    ::testing::internal::CaptureStderr();
    out.status = run_vm(**vm, *loop);
    out.err = ::testing::internal::GetCapturedStderr();
    return out;
}

bool host_has_hardware_virtualization()
{
    std::string why;
    auto dev = test::open_kvm(why);
    return dev && dev->hardware_virtualization();
}

// LIDT of an all-zero pointer (0x1001800 is zeroed BSS in the kernel image).
const std::vector<uint8_t> k_lidt_empty = { 0x0f, 0x01, 0x1d, 0x00, 0x18, 0x00, 0x01 };

TEST(KvmSelect, TripleFaultResetsAndNoRebootEndsTheRun)
{
    // UD2 with an empty IDT: #UD -> #GP -> #DF -> shutdown exit, a reset,
    // and -no-reboot ends the run with status 0 (on this host too).
    KILN_REQUIRE_KVM();
    auto code = k_lidt_empty;
    code.insert(code.end(), { 0x0f, 0x0b });
    KilnRun r = run_pvh(code);
    EXPECT_EQ(r.status, 0) << r.err;
}

TEST(KvmSelect, EmulationFailureEndsTheRunWithAClearError)
{
    // INT3 with an empty IDT: on hardware a triple fault as above; a KVM
    // without VMX/SVM gives up in its instruction emulator, and kiln ends
    // with the error, the registers and the code bytes, status 1.
    KILN_REQUIRE_KVM();
    auto code = k_lidt_empty;
    code.push_back(0xcc);
    KilnRun r = run_pvh(code);
    if (host_has_hardware_virtualization()) {
        EXPECT_EQ(r.status, 0) << r.err;
        return;
    }
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("KVM internal error. Suberror: 1 (emulation failure)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("RIP="), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Code=<cc>"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the vCPU stopped on an internal error"), std::string::npos) << r.err;
}

// Appends a 32-bit instruction with a 32-bit immediate or address.
void emit(std::vector<uint8_t>& c, std::initializer_list<uint8_t> op, uint32_t v)
{
    c.insert(c.end(), op);
    for (int i = 0; i < 4; i++)
        c.push_back(uint8_t(v >> (8 * i)));
}

// The guest programs the 8259 and the PIT, then halts with interrupts on;
// the PIT's IRQ 0 goes through the PIC (ExtINT through the LAPIC's LINT0),
// is injected and acknowledged; at the second tick the handler prints and
// powers off.
std::vector<uint8_t> pit_tick_kernel_code()
{
    constexpr uint32_t k_entry = 0x1000040, k_idt = 0x1001000, k_idt_ptr = 0x1001800, k_stack_top = 0x1002000;
    std::vector<uint8_t> c;
    emit(c, { 0xbc }, k_stack_top); // mov esp, top of the zeroed BSS
    emit(c, { 0xb8 }, 0); // mov eax, handler (patched below)
    size_t handler_imm = c.size() - 4;
    emit(c, { 0x66, 0xa3 }, k_idt + 0x20 * 8); // mov [gate], ax   (offset 15:0)
    emit(c, { 0x8c, 0x0d }, k_idt + 0x20 * 8 + 2); // mov [gate+2], cs
    emit(c, { 0x66, 0xc7, 0x05 }, k_idt + 0x20 * 8 + 4); // mov word [gate+4], 0x8e00 (interrupt gate)
    c.insert(c.end(), { 0x00, 0x8e });
    c.insert(c.end(), { 0xc1, 0xe8, 0x10 }); // shr eax, 16
    emit(c, { 0x66, 0xa3 }, k_idt + 0x20 * 8 + 6); // mov [gate+6], ax   (offset 31:16)
    emit(c, { 0x66, 0xc7, 0x05 }, k_idt_ptr); // mov word [ptr], 0x107
    c.insert(c.end(), { 0x07, 0x01 });
    emit(c, { 0xc7, 0x05 }, k_idt_ptr + 2); // mov dword [ptr+2], idt
    for (int i = 0; i < 4; i++)
        c.push_back(uint8_t(k_idt >> (8 * i)));
    emit(c, { 0x0f, 0x01, 0x1d }, k_idt_ptr); // lidt [ptr]
    // 8259 master: ICW1-4 (vectors 0x20-0x27), then only IRQ 0 unmasked.
    for (auto [port, value] :
        { std::pair<uint8_t, uint8_t> { 0x20, 0x11 }, { 0x21, 0x20 }, { 0x21, 0x04 }, { 0x21, 0x01 }, { 0x21, 0xfe } })
        c.insert(c.end(), { 0xb0, value, 0xe6, port }); // mov al, value; out port, al
    // PIT channel 0, mode 2, count 0x2e9c (10 ms).
    for (auto [port, value] : { std::pair<uint8_t, uint8_t> { 0x43, 0x34 }, { 0x40, 0x9c }, { 0x40, 0x2e } })
        c.insert(c.end(), { 0xb0, value, 0xe6, port });
    c.insert(c.end(), { 0xfb, 0xf4, 0xeb, 0xfd }); // sti; hlt; jmp hlt (a wake-up without the tick)
    uint32_t handler = k_entry + uint32_t(c.size());
    for (int i = 0; i < 4; i++)
        c[handler_imm + size_t(i)] = uint8_t(handler >> (8 * i));
    // The handler never returns (this build host's KVM cannot emulate a
    // protected-mode IRET). The first tick may come as soon as the PIT is
    // programmed: it sends EOI and halts again, so the second tick wakes a
    // HLT for sure; that one prints and powers off.
    constexpr uint32_t k_ticks = 0x1001900;
    emit(c, { 0xff, 0x05 }, k_ticks); // inc dword [ticks]
    emit(c, { 0x83, 0x3d }, k_ticks); // cmp dword [ticks], 2
    c.push_back(0x02);
    c.insert(c.end(), { 0x73, 0x08 }); // jae done
    c.insert(c.end(), { 0xb0, 0x20, 0xe6, 0x20 }); // mov al, 0x20; out 0x20, al  (EOI)
    c.insert(c.end(), { 0xfb, 0xf4, 0xeb, 0xfd }); // sti; hlt; jmp hlt
    auto tail = hw::test::serial_then_poweroff_code("tick\n"); // done:
    c.insert(c.end(), tail.begin(), tail.end());
    return c;
}

void expect_tick(const char* accel)
{
    std::string serial = "/tmp/kiln-kvm-tick-" + std::to_string(getpid()) + ".out";
    KilnRun r = run_pvh(pit_tick_kernel_code(), serial, accel);
    std::ifstream f(serial);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    unlink(serial.c_str());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(text, "tick\n") << accel << ": " << r.err;
}

TEST(KvmBoard, PitInterruptWakesHltThroughThePic)
{
    KILN_REQUIRE_KVM();
    expect_tick("kvm");
}

TEST(KvmBoard, SameKernelUnderTheInterpreter) { expect_tick("interp"); }

} // namespace
} // namespace kiln::system
