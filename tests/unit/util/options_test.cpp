#include <gtest/gtest.h>

#include "util/options.h"

using namespace kiln;

TEST(Options, ParsesKeysValuesAndEscapes)
{
    auto list = OptionList::parse("file=a,,b.img,format=qcow2,readonly=on").value();
    EXPECT_EQ(list.get("file").value(), "a,b.img");
    EXPECT_EQ(list.get("format").value(), "qcow2");
    EXPECT_TRUE(list.get_bool("readonly").value().value());
}

TEST(Options, ImpliedKeyAndDottedSubtree)
{
    auto list = OptionList::parse("secret,id=sec0,data=pw", "qom-type").value();
    EXPECT_EQ(list.get("qom-type").value(), "secret");
    auto nested = OptionList::parse("driver=qcow2,file.driver=file,file.filename=x.img").value();
    auto file = nested.subtree("file");
    EXPECT_EQ(file.get("driver").value(), "file");
    EXPECT_EQ(file.get("filename").value(), "x.img");
}

TEST(Options, BadValuesNameTheKey)
{
    auto list = OptionList::parse("lazy_refcounts=maybe,cluster_size=12q").value();
    auto b = list.get_bool("lazy_refcounts");
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.error().message().find("lazy_refcounts"), std::string::npos);
    EXPECT_FALSE(list.get_size("cluster_size").ok());
    EXPECT_EQ(OptionList::parse("a=1,,").value().get("a").value(), "1,");
    EXPECT_EQ(OptionList::parse("").value().entries().size(), 0u);
}

TEST(Options, ToStringEscapesCommas)
{
    auto list = OptionList::parse("file=a,,b").value();
    EXPECT_EQ(list.to_string(), "file=a,,b");
}
