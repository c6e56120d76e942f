// The "Formatting '...'" line and `create -o help` text, compared with
// what qemu-img 7.2 prints.
#include <gtest/gtest.h>

#include "block/registry.h"
#include "tools/img/create_options.h"

using namespace kiln;
using namespace kiln::tools;

TEST(CreateOptions, Qcow2DefaultsLine)
{
    auto line = formatting_line_options(block::qcow2_format_driver(), OptionList(), 67108864);
    EXPECT_EQ(line, "fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=67108864 "
                    "lazy_refcounts=off refcount_bits=16");
}

TEST(CreateOptions, Qcow2AllOptionsInQemuOrder)
{
    auto opts = OptionList::parse("compat=1.1,backing_file=a.qcow2,backing_fmt=qcow2,preallocation=metadata,"
                                  "lazy_refcounts=on,refcount_bits=16,compression_type=zlib,extended_l2=on,"
                                  "cluster_size=64k,nocow=on,extent_size_hint=1M");
    ASSERT_TRUE(opts.ok());
    auto line = formatting_line_options(block::qcow2_format_driver(), *opts, 1048576);
    EXPECT_EQ(line, "fmt=qcow2 cluster_size=65536 extended_l2=on preallocation=metadata compression_type=zlib "
                    "size=1048576 compat=1.1 backing_file=a.qcow2 backing_fmt=qcow2 lazy_refcounts=on "
                    "refcount_bits=16 nocow=on extent_size_hint=1048576");
}

TEST(CreateOptions, RawLine)
{
    auto opts = OptionList::parse("preallocation=full");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(formatting_line_options(block::raw_format_driver(), *opts, 1048576),
              "fmt=raw size=1048576 preallocation=full");
}

TEST(CreateOptions, UnknownOptionIsRejected)
{
    auto opts = OptionList::parse("foo=bar");
    ASSERT_TRUE(opts.ok());
    auto r = validate_create_options(block::qcow2_format_driver(), *opts);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "Invalid parameter 'foo'");
}

TEST(CreateOptions, HelpListsSortedOptions)
{
    std::string help = create_options_help(block::raw_format_driver(), false);
    EXPECT_EQ(help, "Supported raw options:\n"
                    "  size=<size>            - Virtual disk size\n"
                    "\n"
                    "The protocol level may support further options.\n"
                    "Specify the target filename to include those options.\n");
    std::string qcow2 = create_options_help(block::qcow2_format_driver(), false);
    EXPECT_NE(qcow2.find("  data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image\n"),
              std::string::npos);
    EXPECT_LT(qcow2.find("backing_file="), qcow2.find("size="));
}
