#include <gtest/gtest.h>

#include "util/size.h"

using namespace kiln;

TEST(Size, ParsesQemuImgSyntax)
{
    EXPECT_EQ(parse_size("512").value(), 512u);
    EXPECT_EQ(parse_size("4k").value(), 4096u);
    EXPECT_EQ(parse_size("4K").value(), 4096u);
    EXPECT_EQ(parse_size("20G").value(), 20ull << 30);
    EXPECT_EQ(parse_size("1.5T").value(), (3ull << 40) / 2);
    EXPECT_EQ(parse_size("1M").value(), 1u << 20);
    EXPECT_EQ(parse_size("64", 1 << 20).value(), 64u << 20);
}

TEST(Size, RejectsJunk)
{
    EXPECT_FALSE(parse_size("").ok());
    EXPECT_FALSE(parse_size("-1").ok());
    EXPECT_FALSE(parse_size("12x").ok());
    EXPECT_FALSE(parse_size("1.5").ok());
    EXPECT_FALSE(parse_size("99999999999E").ok());
    EXPECT_FALSE(parse_size("9E").ok());
}

TEST(Size, HumanFormatMatchesQemu)
{
    EXPECT_EQ(format_size_human(0), "0 B");
    EXPECT_EQ(format_size_human(512), "512 B");
    EXPECT_EQ(format_size_human(1 << 20), "1 MiB");
    EXPECT_EQ(format_size_human(1ull << 30), "1 GiB");
    EXPECT_EQ(format_size_human(196608), "192 KiB");
    EXPECT_EQ(format_size_human(1536ull << 20), "1.5 GiB");
}
