// The host CPU as the interpreter's oracle: every user-mode instruction
// form the interpreter implements, on random and edge-case operands, must
// leave the same registers, flags (minus the SDM's undefined ones), memory
// and fault as native execution.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/oracle/generators.h"
#include "tests/oracle/oracle.h"

using namespace kiln::oracle;

namespace {

constexpr unsigned k_cases_per_form = 60;

void run_family(const std::string& family, uint64_t seed)
{
    std::vector<OracleCase> cases = generate_family(family, k_cases_per_form, seed);
    ASSERT_FALSE(cases.empty());
    size_t failures = 0;
    size_t faults = 0;
    // Batches keep memory bounded (each case carries 12 KiB of memory image).
    for (size_t start = 0; start < cases.size(); start += 400) {
        std::vector<OracleCase> batch(cases.begin() + long(start),
                                      cases.begin() + long(std::min(cases.size(), start + 400)));
        auto native = run_native(batch);
        ASSERT_TRUE(native.ok()) << native.error().message();
        auto interp = run_interpreter(batch);
        ASSERT_TRUE(interp.ok()) << interp.error().message();
        for (size_t i = 0; i < batch.size(); i++) {
            if (native.value()[i].fault != Fault::None)
                faults++;
            std::string diff = compare(batch[i], native.value()[i], interp.value()[i]);
            if (!diff.empty()) {
                if (failures < 15) {
                    std::string hex;
                    char b[4];
                    for (uint8_t x : batch[i].code) {
                        snprintf(b, sizeof b, "%02x ", x);
                        hex += b;
                    }
                    ADD_FAILURE() << batch[i].name << " [" << hex << "]: " << diff;
                }
                failures++;
            }
        }
    }
    printf("oracle %s: %zu cases, %zu faulted natively, %zu mismatches\n", family.c_str(), cases.size(), faults,
           failures);
    EXPECT_EQ(failures, 0u);
}

} // namespace

TEST(Oracle, Alu) { run_family("alu", 0x1111); }
TEST(Oracle, MulDiv) { run_family("muldiv", 0x2222); }
TEST(Oracle, Shift) { run_family("shift", 0x3333); }
TEST(Oracle, Bits) { run_family("bits", 0x4444); }
TEST(Oracle, Move) { run_family("move", 0x5555); }
TEST(Oracle, Stack) { run_family("stack", 0x6666); }
TEST(Oracle, Branch) { run_family("branch", 0x7777); }
TEST(Oracle, String) { run_family("string", 0x8888); }
TEST(Oracle, SseInteger) { run_family("sse-int", 0x9999); }
TEST(Oracle, SseFloat) { run_family("sse-fp", 0xaaaa); }
