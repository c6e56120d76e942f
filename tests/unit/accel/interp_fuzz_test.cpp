// Random bytes executed as guest code in every mode, at CPL 0, with random
// registers: whatever the guest does (system instructions included), the
// interpreter must return to its caller without crashing or hanging.
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "accel/interp/interpreter.h"
#include "tests/oracle/generators.h"
#include "tests/oracle/test_machine.h"

using namespace kiln;
using namespace kiln::accel;
using namespace kiln::oracle;

namespace {

void fuzz(unsigned mode, unsigned runs, uint64_t seed)
{
    FakeHost host(16ull << 20);
    host.on_halt = [](FakeHost&) { return false; };
    auto model = x86::CpuModel::by_name("max");
    ASSERT_TRUE(model.ok());
    auto cpu = std::move(interp::Interpreter::create(host, model.value()).value());
    // KILN_FUZZ_SEED explores other inputs by hand; the default is fixed.
    if (const char* env = getenv("KILN_FUZZ_SEED"))
        seed ^= strtoull(env, nullptr, 0);
    Rng rng { seed | 1 };
    unsigned resets = 0;
    for (unsigned i = 0; i < runs; i++) {
        cpu->reset(x86::ResetKind::PowerOn);
        x86::CpuState& s = cpu->state();
        if (mode != 16)
            setup_long_mode(*cpu, host, 0);
        if (mode == 32) {
            s.segment(x86::Seg::CS) = { k_sel_code32, 0xc09b, 0xffffffff, 0 };
        } else if (mode == 16) {
            s.segment(x86::Seg::CS) = { 0x1000, 0x9b, 0xffff, 0x10000 };
        }
        uint64_t rip = mode == 16 ? 0x100 : 0x100000;
        uint64_t base = mode == 16 ? 0x10000 : 0;
        for (unsigned b = 0; b < 256; b++)
            host.ram(base + rip)[b] = uint8_t(rng.next());
        cpu->invalidate_code(base + rip, 256);
        for (auto& g : s.gpr)
            g = rng.value();
        s.gpr[x86::k_rsp] = mode == 16 ? 0x8000 : 0x8000 + rng.below(0x1000);
        s.rip = rip;
        interp::RunExit e = cpu->run(64);
        if (e == interp::RunExit::Reset)
            resets++;
        EXPECT_NE(e, interp::RunExit::InternalError);
    }
    printf("fuzz %u-bit: %u runs, %u ended in a triple fault\n", mode, runs, resets);
}

} // namespace

TEST(InterpFuzz, RandomCode64) { fuzz(64, 3000, 0x5eed64); }
TEST(InterpFuzz, RandomCode32) { fuzz(32, 2000, 0x5eed32); }
TEST(InterpFuzz, RandomCode16) { fuzz(16, 2000, 0x5eed16); }
