// Native half of the oracle (see oracle.h). Everything that touches the
// fixed test addresses runs in a forked child, so a stray store from a
// test sequence can never damage the test process.
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <asm/ldt.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tests/oracle/oracle.h"

extern "C" void kiln_oracle_enter();
extern "C" void kiln_oracle_exit();

namespace kiln::oracle {

namespace {

constexpr uint64_t k_block_addr = 0x700000;

struct Block {
    uint64_t gpr_in[16];
    uint64_t rflags_in;
    uint64_t entry;
    uint64_t host_rsp;
    uint64_t data_selector;
    uint8_t pad0[256 - 160];
    uint64_t gpr_out[16];
    uint64_t rflags_out;
    uint8_t pad1[512 - 392];
    accel::x86::FxsaveArea fx_in;
    accel::x86::FxsaveArea fx_out;
};
static_assert(offsetof(Block, gpr_out) == 256);
static_assert(offsetof(Block, rflags_out) == 384);
static_assert(offsetof(Block, fx_in) == 512);
static_assert(offsetof(Block, fx_out) == 1024);

sigjmp_buf g_jump;
volatile int g_signal = 0;

void on_signal(int sig, siginfo_t*, void*)
{
    // A case may run with RFLAGS.AC set (alignment-check cases), and the
    // kernel keeps it for the handler: clear it before any C++ code can
    // make a misaligned access (stepping over the red zone to push).
    asm volatile("subq $128, %%rsp\n\tpushfq\n\tandq $-0x40001, (%%rsp)\n\tpopfq\n\taddq $128, %%rsp" ::: "cc", "memory");
    g_signal = sig;
    siglongjmp(g_jump, 1);
}

bool map_fixed(uint64_t addr, size_t len, int prot)
{
    void* p = mmap(reinterpret_cast<void*>(addr), len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    return p == reinterpret_cast<void*>(addr);
}

Fault fault_from_signal(int sig)
{
    switch (sig) {
    case SIGFPE:
        return Fault::DivideError;
    case SIGILL:
        return Fault::InvalidOpcode;
    case SIGTRAP:
        return Fault::Breakpoint;
    case SIGBUS:
        return Fault::AlignmentCheck;
    default:
        return Fault::Protection;
    }
}

[[noreturn]] void child_main(const std::vector<OracleCase>& cases, OracleOutcome* results)
{
    if (!map_fixed(k_code_addr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC)
        || !map_fixed(k_data_addr, k_data_bytes, PROT_READ | PROT_WRITE)
        || !map_fixed(k_stack_addr, k_stack_bytes, PROT_READ | PROT_WRITE)
        || !map_fixed(k_block_addr, 8192, PROT_READ | PROT_WRITE))
        _exit(3);
    static uint8_t altstack[65536];
    stack_t ss {};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa { };
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int sig : { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP })
        sigaction(sig, &sa, nullptr);

    // LDT: entry 0 a 16-bit code segment at the code page, entry 1 a
    // 16-bit data segment over the data area.
    struct user_desc code16 { };
    code16.entry_number = 0;
    code16.base_addr = unsigned(k_code_addr);
    code16.limit = 0xffff;
    code16.contents = 2;
    code16.useable = 1;
    struct user_desc data16 { };
    data16.entry_number = 1;
    data16.base_addr = unsigned(k_data_addr);
    data16.limit = k_data_bytes - 1;
    data16.useable = 1;
    if (syscall(SYS_modify_ldt, 1, &code16, sizeof code16) != 0
        || syscall(SYS_modify_ldt, 1, &data16, sizeof data16) != 0)
        _exit(4);
    auto* block = reinterpret_cast<Block*>(k_block_addr);
    auto* code = reinterpret_cast<uint8_t*>(k_code_addr);
    accel::x86::FxsaveArea base_fx;
    asm volatile("fxsave64 %0" : "=m"(base_fx));
    for (size_t i = 0; i < cases.size(); i++) {
        const OracleCase& c = cases[i];
        OracleOutcome& r = results[i];
        std::memcpy(code, c.code.data(), c.code.size());
        uint64_t exit_addr = reinterpret_cast<uint64_t>(&kiln_oracle_exit);
        auto put_far = [&](unsigned at, uint32_t off, uint16_t sel) {
            std::memcpy(code + at, &off, 4);
            std::memcpy(code + at + 4, &sel, 2);
        };
        // The exit address lives at an 8-aligned slot, so the indirect jump
        // back reads it aligned even in alignment-check (RFLAGS.AC) cases.
        constexpr unsigned k_exit_slot = 0xf00;
        std::memcpy(code + k_exit_slot, &exit_addr, 8);
        auto jmp_exit = [&](unsigned at) { // jmp *disp32(%rip) -> the slot
            const uint8_t op[] = { 0xff, 0x25 };
            int32_t disp = int32_t(k_exit_slot) - int32_t(at + 6);
            std::memcpy(code + at, op, 2);
            std::memcpy(code + at + 2, &disp, 4);
        };
        uint8_t* t = code + c.code.size();
        block->data_selector = c.mode16 ? 0x0f : 0x2b;
        if (c.mode16) {
            // Enter at LDT code selector 7, offset 0; leave through
            // "jmp far cs:[0x800]" (m16:32) to the 64-bit CS.
            put_far(0x800, uint32_t(k_code_addr + 0x900), 0x33);
            put_far(0x810, 0, 0x07);
            const uint8_t out[] = { 0x2e, 0x66, 0xff, 0x2e, 0x00, 0x08 };
            std::memcpy(t, out, sizeof out);
            jmp_exit(0x900);
            const uint8_t in[] = { 0xff, 0x2d };
            std::memcpy(code + 0xa00, in, 2);
            int32_t disp = 0x810 - (0xa00 + 6);
            std::memcpy(code + 0xa02, &disp, 4);
            block->entry = k_code_addr + 0xa00;
        } else if (!c.mode32) {
            jmp_exit(unsigned(c.code.size()));
            block->entry = k_code_addr;
        } else {
            // 32-bit code: enter through a far jump to Linux's 32-bit user CS
            // (0x23) and leave through one back to the 64-bit CS (0x33).
            put_far(0x800, uint32_t(k_code_addr + 0x900), 0x33);
            put_far(0x810, uint32_t(k_code_addr), 0x23);
            const uint8_t out[] = { 0xff, 0x2d }; // ljmp *abs32
            std::memcpy(t, out, 2);
            uint32_t ptr = uint32_t(k_code_addr + 0x800);
            std::memcpy(t + 2, &ptr, 4);
            jmp_exit(0x900);
            const uint8_t in[] = { 0xff, 0x2d }; // ljmp *disp32(%rip) (m16:32)
            std::memcpy(code + 0xa00, in, 2);
            int32_t disp = 0x810 - (0xa00 + 6);
            std::memcpy(code + 0xa02, &disp, 4);
            block->entry = k_code_addr + 0xa00;
        }
        std::memcpy(reinterpret_cast<void*>(k_data_addr), c.in.data, k_data_bytes);
        std::memcpy(reinterpret_cast<void*>(k_stack_addr), c.in.stack, k_stack_bytes);
        std::memcpy(block->gpr_in, c.in.gpr, sizeof c.in.gpr);
        block->rflags_in = c.in.rflags;
        block->fx_in = base_fx;
        block->fx_in.mxcsr = c.in.mxcsr;
        std::memcpy(block->fx_in.xmm, c.in.xmm, sizeof c.in.xmm);
        block->fx_in.fcw = c.in.fcw;
        block->fx_in.fsw = c.in.fsw;
        block->fx_in.ftw = c.in.ftw;
        std::memcpy(block->fx_in.st, c.in.st, sizeof c.in.st);
        g_signal = 0;
        if (sigsetjmp(g_jump, 1) == 0) {
            kiln_oracle_enter();
            r.fault = Fault::None;
            std::memcpy(r.out.gpr, block->gpr_out, sizeof r.out.gpr);
            r.out.rflags = block->rflags_out;
            std::memcpy(r.out.xmm, block->fx_out.xmm, sizeof r.out.xmm);
            r.out.mxcsr = block->fx_out.mxcsr;
            r.out.fcw = block->fx_out.fcw;
            r.out.fsw = block->fx_out.fsw;
            r.out.ftw = block->fx_out.ftw;
            std::memcpy(r.out.st, block->fx_out.st, sizeof r.out.st);
        } else {
            r.fault = fault_from_signal(g_signal);
            asm volatile("fxrstor64 %0" ::"m"(base_fx));
        }
        std::memcpy(r.out.data, reinterpret_cast<void*>(k_data_addr), k_data_bytes);
        std::memcpy(r.out.stack, reinterpret_cast<void*>(k_stack_addr), k_stack_bytes);
    }
    _exit(0);
}

} // namespace

Result<std::vector<OracleOutcome>> run_native(const std::vector<OracleCase>& cases)
{
    for (const auto& c : cases)
        if (c.code.size() > k_max_code_bytes || ((c.mode32 || c.mode16) && c.code.size() > 0x7f0))
            return Error::invalid("oracle case '" + c.name + "' has too much code");
    size_t bytes = sizeof(OracleOutcome) * (cases.size() ? cases.size() : 1);
    void* shared = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        return Error::from_errno(errno, "oracle: cannot map the result area");
    auto* results = static_cast<OracleOutcome*>(shared);
    pid_t pid = fork();
    if (pid < 0) {
        munmap(shared, bytes);
        return Error::from_errno(errno, "oracle: fork");
    }
    if (pid == 0)
        child_main(cases, results);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        munmap(shared, bytes);
        return Error::internal("oracle: native child failed (status " + std::to_string(status)
            + "; exit 3: the fixed test addresses were not free; 4: modify_ldt failed)");
    }
    std::vector<OracleOutcome> out(results, results + cases.size());
    munmap(shared, bytes);
    return out;
}

} // namespace kiln::oracle
