// qcow2 sizes as qemu-img measure 7.2 reports them (values captured from
// Debian's qemu-img).
#include <gtest/gtest.h>

#include "tools/img/commands.h"

using kiln::tools::qcow2_fully_allocated_bytes;

TEST(Measure, Qcow2FullyAllocatedMatchesQemu)
{
    EXPECT_EQ(qcow2_fully_allocated_bytes(1ull << 30, 65536, 16, false), 1074135040ull);
    EXPECT_EQ(qcow2_fully_allocated_bytes(64ull << 20, 65536, 16, false), 67436544ull);
    EXPECT_EQ(qcow2_fully_allocated_bytes(10ull << 30, 4096, 8, false), 10761072640ull);
    EXPECT_EQ(qcow2_fully_allocated_bytes(1ull << 30, 65536, 16, true), 1074266112ull);
}

TEST(Measure, UnalignedSizeRoundsToClusters)
{
    EXPECT_EQ(qcow2_fully_allocated_bytes(1, 65536, 16, false), qcow2_fully_allocated_bytes(65536, 65536, 16, false));
}
