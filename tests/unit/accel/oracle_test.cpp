// The host CPU as the interpreter's oracle: every user-mode instruction
// form the interpreter implements, on random and edge-case operands, must
// leave the same registers, flags (minus the SDM's undefined ones), memory
// and fault as native execution.
#include <cstdio>

#include <gtest/gtest.h>

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
        std::vector<OracleCase> batch(
            cases.begin() + long(start), cases.begin() + long(std::min(cases.size(), start + 400)));
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
    printf(
        "oracle %s: %zu cases, %zu faulted natively, %zu mismatches\n", family.c_str(), cases.size(), faults, failures);
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
TEST(Oracle, X87) { run_family("x87", 0xbbbb); }
TEST(Oracle, Mmx) { run_family("mmx", 0xbbbc); }
TEST(Oracle, Sse4) { run_family("sse4", 0xbbbd); }
TEST(Oracle, Bmi) { run_family("bmi", 0xbbbf); }
TEST(Oracle, Compat32Bmi) { run_family("32-bmi", 0xc00c); }
TEST(Oracle, Xsave) { run_family("xsave", 0xbbc0); }
TEST(Oracle, Compat32Xsave) { run_family("32-xsave", 0xc00d); }
TEST(Oracle, AlignmentCheck) { run_family("align", 0xbbbe); }
TEST(Oracle, Compat32Mmx) { run_family("32-mmx", 0xc00a); }
TEST(Oracle, Compat32Sse4) { run_family("32-sse4", 0xc00b); }
TEST(Oracle, Compat32Alu) { run_family("32-alu", 0xc001); }
TEST(Oracle, Compat32MulDiv) { run_family("32-muldiv", 0xc002); }
TEST(Oracle, Compat32Shift) { run_family("32-shift", 0xc003); }
TEST(Oracle, Compat32Bits) { run_family("32-bits", 0xc004); }
TEST(Oracle, Compat32Move) { run_family("32-move", 0xc005); }
TEST(Oracle, Compat32Stack) { run_family("32-stack", 0xc006); }
TEST(Oracle, Compat32Branch) { run_family("32-branch", 0xc007); }
TEST(Oracle, Compat32String) { run_family("32-string", 0xc008); }
TEST(Oracle, Compat32Legacy) { run_family("32-legacy", 0xc009); }
TEST(Oracle, Code16Alu) { run_family("16-alu", 0xd001); }
TEST(Oracle, Code16MulDiv) { run_family("16-muldiv", 0xd002); }
TEST(Oracle, Code16Shift) { run_family("16-shift", 0xd003); }
TEST(Oracle, Code16Bits) { run_family("16-bits", 0xd004); }
TEST(Oracle, Code16Move) { run_family("16-move", 0xd005); }
TEST(Oracle, Code16Branch) { run_family("16-branch", 0xd007); }
TEST(Oracle, Code16String) { run_family("16-string", 0xd008); }
TEST(Oracle, Code16Bmi) { run_family("16-bmi", 0xd00a); }
TEST(Oracle, Code16Legacy) { run_family("16-legacy", 0xd009); }
