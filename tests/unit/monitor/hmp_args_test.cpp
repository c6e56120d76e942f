// HMP argument parsing: QEMU's args_type conventions, quoting and the
// expression grammar, with messages captured from QEMU 7.2.
#include <gtest/gtest.h>

#include "monitor/hmp_args.h"
#include "monitor/hmp_executor.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class HmpArgsTest : public ::testing::Test, public testing::HmpHarness {
protected:
    HmpState state;

    Result<int64_t> eval(std::string_view text) { return parse_hmp_expression(text, &machine, state); }
};

TEST_F(HmpArgsTest, ExpressionGrammar)
{
    EXPECT_EQ(eval("010").value(), 8); // strtoull base 0: octal
    EXPECT_EQ(eval("0x10 + 4 * 2").value(), 0x18);
    EXPECT_EQ(eval("-1").value(), -1);
    EXPECT_EQ(eval("~0").value(), -1);
    EXPECT_EQ(eval("0xffff0 & 0xff").value(), 0xf0);
    EXPECT_EQ(eval("(0xffff0 | 1) ^ 3").value(), 0xffff2);
    EXPECT_EQ(eval("7 % 4").value(), 3);
    EXPECT_EQ(eval("'a'").value(), 0x61);
    EXPECT_EQ(eval("$edx").value(), 0x60fb1);
    EXPECT_EQ(eval("$pc").value(), 0xffff0000 + 0xfff0);
    EXPECT_EQ(eval("0x8000000000000000 / -1").value(), INT64_MIN); // no trap
    EXPECT_EQ(eval("99999999999999999999").error().message(), "number too large");
    EXPECT_EQ(eval("'a").error().message(), "missing terminating ' character");
    EXPECT_EQ(eval("5 % 0").error().message(), "division by zero");
    EXPECT_EQ(eval("").error().message(), "unexpected end of expression");
    EXPECT_EQ(eval("zz").error().message(), "invalid char 'z' in expression");
}

TEST_F(HmpArgsTest, ExpressionStopsAtTheNextArgument)
{
    std::string_view text = "0x10 16 \"file\"";
    EXPECT_EQ(parse_hmp_expression(text, &machine, state).value(), 16);
    EXPECT_EQ(text, "16 \"file\"");
}

TEST_F(HmpArgsTest, ThirtyTwoBitIntegersAndQuotedStrings)
{
    EXPECT_EQ(run("sendkey a 0x100000000"),
        "'sendkey' has failed: integer is for 32-bit values\nTry \"help sendkey\" for more information\n");
    EXPECT_EQ(run("sendkey a -1"),
        "'sendkey' has failed: integer is for 32-bit values\nTry \"help sendkey\" for more information\n");
    EXPECT_EQ(run("change ide1-cd0 \"/tmp/a b"),
        "unterminated string\nchange: filename expected\nTry \"help change\" for more information\n");
    EXPECT_EQ(run("change ide1-cd0 \"/tmp/a\\qb\""),
        "unsupported escape code: '\\q'\nchange: filename expected\nTry \"help change\" for more information\n");
    EXPECT_EQ(run("change ide1-cd0 \"/nonexist/a b\" raw bogus"), "Error: invalid parameter value: bogus\n");
    EXPECT_EQ(
        run("change ide1-cd0 \"/nonexist/a b\""), "Error: Could not open '/nonexist/a b': No such file or directory\n");
    EXPECT_EQ(run("i status"), "unknown command: 'i'\n");
    EXPECT_EQ(run("help info nosuch"), "unknown command: 'info nosuch'\n");
}

TEST_F(HmpArgsTest, FlagsAndOptionalArguments)
{
    const Command* regs = table.find_info("registers");
    ASSERT_NE(regs, nullptr);
    Json all = parse_hmp_args(*regs, "registers", " -a", state, &machine).value();
    EXPECT_EQ(all, Json::parse(R"({"cpustate_all": true})"));
    Json one = parse_hmp_args(*regs, "registers", " 0", state, &machine).value();
    EXPECT_EQ(one, Json::parse(R"({"vcpu": 0})"));
    EXPECT_EQ(parse_hmp_args(*regs, "registers", "", state, &machine).value(), Json::object());
    const Command* change = table.find_hmp("change");
    Json parsed = parse_hmp_args(*change, "change", "ide1-cd0 -f \"a b\" raw read-only", state, &machine).value();
    EXPECT_EQ(parsed, Json::parse(R"({"device": "ide1-cd0", "force": true, "target": "a b", "arg": "raw",
                                      "read-only-mode": "read-only"})"));
    const Command* mtree = table.find_info("mtree");
    EXPECT_EQ(parse_hmp_args(*mtree, "mtree", "-f -D", state, &machine).value(),
        Json::parse(R"({"flatview": true, "disabled": true})"));
    EXPECT_EQ(parse_hmp_args(*mtree, "mtree", "-z", state, &machine).error().message(), "mtree: unsupported option -z");
}

TEST_F(HmpArgsTest, FullHelpListingMatchesQemuForKilnsCommands)
{
    EXPECT_EQ(run("help"),
        "block_resize device size -- resize a block image\n"
        "change device [-f] filename [format [read-only-mode]] -- change a removable medium, optional format, "
        "use -f to force the operation\n"
        "commit device|all -- commit changes to the disk images (if -snapshot is used) or backing files\n"
        "cont|c  -- resume emulation\n"
        "cpu index -- set the default CPU\n"
        "eject [-f] device -- eject a removable medium (use -f to force it)\n"
        "help|? [cmd] -- show the help\n"
        "info [subcommand] -- show various information about the system state\n"
        "memsave addr size file -- save to disk virtual memory dump starting at 'addr' of size 'size'\n"
        "pmemsave addr size file -- save to disk physical memory dump starting at 'addr' of size 'size'\n"
        "quit|q  -- quit the emulator\n"
        "sendkey keys [hold_ms] -- send keys to the VM (e.g. 'sendkey ctrl-alt-f1', default hold time=100 ms)\n"
        "stop|s  -- stop emulation\n"
        "system_powerdown  -- send system power down event\n"
        "system_reset  -- reset the system\n"
        "x /fmt addr -- virtual memory dump starting at 'addr'\n"
        "xp /fmt addr -- physical memory dump starting at 'addr'\n");
}

} // namespace
} // namespace kiln::monitor
