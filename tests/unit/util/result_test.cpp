#include <gtest/gtest.h>

#include "util/result.h"

using namespace kiln;

static Result<int> parse_positive(int v)
{
    if (v <= 0)
        return Error::invalid("value must be positive");
    return v;
}

static Result<int> doubled(int v)
{
    int x = TRY(parse_positive(v));
    return x * 2;
}

TEST(Result, TryPropagatesValue) { EXPECT_EQ(doubled(4).value(), 8); }

TEST(Result, TryPropagatesError)
{
    auto r = doubled(-1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_EQ(r.error().message(), "value must be positive");
}

TEST(Result, ErrnoMessageAndContext)
{
    Error e = Error::from_errno(ENOENT, "Could not open 'x'");
    EXPECT_EQ(e.message(), "Could not open 'x': No such file or directory");
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_EQ(e.errno_value(), ENOENT);
    EXPECT_EQ(e.with_context("ctx").message(), "ctx: Could not open 'x': No such file or directory");
}
