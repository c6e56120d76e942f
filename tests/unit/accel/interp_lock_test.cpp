// LOCKed read-modify-write is atomic across vCPU threads: two interpreters
// on two host threads hammer the same counters with LOCK INC, LOCK XADD,
// a LOCK CMPXCHG retry loop and XCHG-based spinlock-protected plain
// increments; no update may be lost.
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

constexpr uint64_t k_counters = 0x500000;
constexpr uint32_t k_iterations = 100000;

std::vector<uint8_t> worker_code()
{
    std::vector<uint8_t> c = {
        0x48, 0xbf, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, // mov rdi, 0x500000
        0xb9, 0, 0, 0, 0, // mov ecx, k_iterations
        0xb8, 0x01, 0x00, 0x00, 0x00, // top: mov eax, 1
        0xf0, 0xff, 0x07, // lock inc dword [rdi]
        0xf0, 0x48, 0x0f, 0xc1, 0x47, 0x08, // lock xadd [rdi+8], rax
        0x8b, 0x47, 0x10, // mov eax, [rdi+16]
        0x8d, 0x50, 0x01, // retry: lea edx, [rax+1]
        0xf0, 0x0f, 0xb1, 0x57, 0x10, // lock cmpxchg [rdi+16], edx
        0x75, 0xf6, // jnz retry
        0xba, 0x01, 0x00, 0x00, 0x00, // acquire: mov edx, 1
        0x87, 0x57, 0x18, // xchg [rdi+24], edx
        0x85, 0xd2, // test edx, edx
        0x75, 0xf4, // jnz acquire
        0xff, 0x47, 0x20, // inc dword [rdi+32] (plain, under the spinlock)
        0xc7, 0x47, 0x18, 0x00, 0x00, 0x00, 0x00, // mov dword [rdi+24], 0 (release)
        0xff, 0xc9, // dec ecx
        0x75, 0x00, // jnz top (patched below)
        0xf4, // hlt
    };
    std::memcpy(&c[11], &k_iterations, 4);
    // jnz top: from the end of the jnz back to "top" at offset 15.
    size_t jnz = c.size() - 3;
    c[jnz + 1] = uint8_t(int8_t(15 - int(jnz + 2)));
    return c;
}

uint64_t read64(FakeHost& host, uint64_t gpa)
{
    uint64_t v;
    std::memcpy(&v, host.ram(gpa), 8);
    return v;
}

} // namespace

TEST(InterpLock, LockedUpdatesFromTwoThreadsAreNotLost)
{
    FakeHost host(16ull << 20);
    auto model = x86::CpuModel::by_name("max");
    ASSERT_TRUE(model.ok());
    std::vector<std::unique_ptr<interp::Interpreter>> cpus;
    std::vector<uint8_t> code = worker_code();
    for (unsigned i = 0; i < 2; i++) {
        auto cpu = interp::Interpreter::create(host, model.value());
        ASSERT_TRUE(cpu.ok());
        setup_long_mode(*cpu.value(), host, 0);
        uint64_t at = 0x400000 + 0x1000 * i;
        host.write(at, code);
        cpu.value()->state().rip = at;
        cpu.value()->state().gpr[x86::k_rsp] = 0x90000 - 0x1000 * i;
        cpus.push_back(std::move(cpu).value());
    }
    std::memset(host.ram(k_counters), 0, 64);
    std::vector<interp::RunExit> exits(2);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < 2; i++)
        threads.emplace_back([&, i] { exits[i] = cpus[i]->run(100'000'000); });
    for (auto& t : threads)
        t.join();
    for (unsigned i = 0; i < 2; i++) {
        EXPECT_EQ(exits[i], interp::RunExit::Stopped) << "vCPU " << i;
        EXPECT_EQ(cpus[i]->state().rip, 0x400000 + 0x1000 * i + code.size());
    }
    EXPECT_EQ(read64(host, k_counters) & 0xffffffff, 2ull * k_iterations); // LOCK INC
    EXPECT_EQ(read64(host, k_counters + 8), 2ull * k_iterations); // LOCK XADD
    EXPECT_EQ(read64(host, k_counters + 16) & 0xffffffff, 2ull * k_iterations); // LOCK CMPXCHG loop
    EXPECT_EQ(read64(host, k_counters + 32) & 0xffffffff, 2ull * k_iterations); // XCHG spinlock
    EXPECT_EQ(read64(host, k_counters + 24) & 0xffffffff, 0u); // lock released
}
