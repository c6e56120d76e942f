// The native oracle through the JIT tier: every case runs in one go with
// every block compiled on its first execution (InterpMode::Jit), so each
// instruction form the generators cover goes through the compiled code
// (inline forms, handler calls, the memory slow paths, faults in the
// middle of a block) and must match the host CPU.
#include <cstdio>

#include <gtest/gtest.h>

#include "tests/oracle/generators.h"
#include "tests/oracle/oracle.h"

using namespace kiln::oracle;

namespace {

class JitOracle : public testing::TestWithParam<const char*> { };

TEST_P(JitOracle, MatchesNative)
{
    const std::string family = GetParam();
    std::vector<OracleCase> cases = generate_family(family, 40, 0x7e57 + family.size());
    ASSERT_FALSE(cases.empty());
    size_t failures = 0;
    for (size_t start = 0; start < cases.size(); start += 400) {
        std::vector<OracleCase> batch(
            cases.begin() + long(start), cases.begin() + long(std::min(cases.size(), start + 400)));
        auto native = run_native(batch);
        ASSERT_TRUE(native.ok()) << native.error().message();
        auto jit = run_interpreter(batch, InterpMode::Jit);
        ASSERT_TRUE(jit.ok()) << jit.error().message();
        for (size_t i = 0; i < batch.size(); i++) {
            std::string diff = compare(batch[i], native.value()[i], jit.value()[i]);
            if (!diff.empty() && failures++ < 15)
                ADD_FAILURE() << batch[i].name << ": " << diff;
        }
    }
    printf("jit oracle %s: %zu cases, %zu mismatches\n", family.c_str(), cases.size(), failures);
    EXPECT_EQ(failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, JitOracle,
    testing::Values("alu", "muldiv", "shift", "bits", "move", "stack", "branch", "string", "sse-int", "x87", "align",
        "32-alu", "32-branch"),
    [](const testing::TestParamInfo<const char*>& info) {
        std::string n = info.param;
        for (char& c : n)
            if (c == '-')
                c = '_';
        return n;
    });

} // namespace
