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
    auto rep = run_differential(cases, 15, InterpMode::Jit);
    ASSERT_TRUE(rep.ok()) << rep.error().message();
    for (const std::string& r : rep.value().reported)
        ADD_FAILURE() << r;
    printf("jit oracle %s: %zu cases, %zu mismatches\n", family.c_str(), cases.size(), rep.value().mismatches);
    EXPECT_EQ(rep.value().mismatches, 0u);
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
