// qemu-io's number formatting.
#include <gtest/gtest.h>

#include "tools/io/report.h"

using namespace kiln::tools::io;

TEST(IoReport, Cvtstr)
{
    EXPECT_EQ(cvtstr(65536), "64 KiB");
    EXPECT_EQ(cvtstr(1048576), "1 MiB");
    EXPECT_EQ(cvtstr(40), "40 bytes");
    EXPECT_EQ(cvtstr(553.646 * 1048576), "553.646 MiB");
    EXPECT_EQ(cvtstr(1.5 * 1073741824), "1.500 GiB");
}

TEST(IoReport, Timestr)
{
    EXPECT_EQ(timestr(0.001), "00.00 sec");
    EXPECT_EQ(timestr(5.5), "05.50 sec");
    EXPECT_EQ(timestr(62.5), "01:02.50");
}

TEST(IoReport, NumberArguments)
{
    EXPECT_EQ(parse_number_arg("64k"), 65536);
    EXPECT_EQ(parse_number_arg("0"), 0);
    testing::internal::CaptureStdout();
    EXPECT_EQ(parse_number_arg("12x"), -1);
    EXPECT_EQ(testing::internal::GetCapturedStdout(),
              "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 12x\n");
}
