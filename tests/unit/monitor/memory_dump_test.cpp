// x / xp formats against QEMU 7.2's output for the same bytes (SeaBIOS at
// the reset vector), including /i through capstone.
#include <cstring>

#include <gtest/gtest.h>

#include "monitor/hmp_executor.h"
#include "monitor/memory_dump.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class MemoryDumpTest : public ::testing::Test, public testing::HmpHarness { };

TEST_F(MemoryDumpTest, HexUnitsAndLineLengths)
{
    EXPECT_EQ(run("x /4xb 0"), "0000000000000000: 0x00 0x00 0x00 0x00\n");
    EXPECT_EQ(run("xp /4xw 0"), "0000000000000000: 0x00000000 0x00000000 0x00000000 0x00000000\n");
    EXPECT_EQ(run("xp /8xh 0x100"), "0000000000000100: 0x0000 0x0000 0x0000 0x0000 0x0000 0x0000 0x0000 0x0000\n");
    EXPECT_EQ(run("xp /20xb 0xffff0"),
        "00000000000ffff0: 0xea 0x5b 0xe0 0x00 0xf0 0x30 0x36 0x2f\n"
        "00000000000ffff8: 0x32 0x33 0x2f 0x39 0x39 0x00 0xfc 0x00\n"
        "0000000000100000: 0x00 0x00 0x00 0x00\n");
    EXPECT_EQ(run("xp /9xw 0xffff0"),
        "00000000000ffff0: 0x00e05bea 0x2f3630f0 0x392f3332 0x00fc0039\n"
        "0000000000100000: 0x00000000 0x00000000 0x00000000 0x00000000\n"
        "0000000000100010: 0x00000000\n");
    EXPECT_EQ(run("xp /3xg 0xffff0"),
        "00000000000ffff0: 0x2f3630f000e05bea 0x00fc0039392f3332\n"
        "0000000000100000: 0x0000000000000000\n");
}

TEST_F(MemoryDumpTest, DecimalOctalAndUnsigned)
{
    EXPECT_EQ(run("xp /3dg 0"),
        "0000000000000000:                    0                    0\n"
        "0000000000000010:                    0\n");
    EXPECT_EQ(run("xp /2ub 0"), "0000000000000000:   0   0\n");
    EXPECT_EQ(run("xp /2ob 0"), "0000000000000000:   0   0\n");
    EXPECT_EQ(run("xp /5dh 0xffff0"), "00000000000ffff0: 23530   224 12528 12086 13106\n");
    EXPECT_EQ(run("xp /3ug 0xfffe0"),
        "00000000000fffe0: 14450194128178472689 14080046178295503718\n"
        "00000000000ffff0:  3401960375889976298\n");
    EXPECT_EQ(run("xp /3dw 0xfffe0"), "00000000000fffe0: 3380831985 3364447999 1583766374\n");
    EXPECT_EQ(run("xp /3ow 0xffff0"), "00000000000ffff0:   070055752 05715430360 07113631462\n");
}

TEST_F(MemoryDumpTest, CharactersUseTheLastUnitForLength)
{
    // QEMU computes the length from the remembered unit (here w) before
    // /c switches to bytes, so /c prints 4 characters.
    EXPECT_EQ(run("xp /3ow 0xffff0").empty(), false);
    EXPECT_EQ(run("xp /c 0xffff0"), "00000000000ffff0: '\\xea' '[' '\\xe0' '\\x00'\n");
    EXPECT_EQ(run("xp /8c 0xfe0b0"),
        "00000000000fe0b0: '\\x0f' '\\x87' '\\xd0' '\\x01' 'g' 'f' '\\x8d' 'B' '\\x14' 'f' '\\x89' '\\xc1' "
        "'f' '\\xc1' '\\xe9' '\\x04'\n"
        "00000000000fe0c0: '\\x8e' '\\xc1' 'f' '\\x83' '\\xe0' '\\x0f' '&' 'g' 'f' '\\x8b' '\\x00' 'f' 'j' "
        "'\\x00' 'f' '\\x89'\n");
}

TEST_F(MemoryDumpTest, EscapesAndAllOnesMatchQemu)
{
    // Loaded with -device loader into QEMU 7.2 and dumped there.
    machine.poke(
        0x1000, { 0x27, 0x5c, 0x0a, 0x0d, 0x41, 0x7f, 0x80, 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff });
    EXPECT_EQ(run("xp /8cb 0x1000"), "0000000000001000: '\\'' '\\\\' '\\n' '\\r' 'A' '\\x7f' '\\x80' ' '\n");
    EXPECT_EQ(run("xp /1dg 0x1008"), "0000000000001008:                   -1\n");
    EXPECT_EQ(run("xp /1dw 0x1008"), "0000000000001008: 4294967295\n");
    EXPECT_EQ(run("xp /2dh 0x1008"), "0000000000001008: 65535 65535\n");
    EXPECT_EQ(run("xp /1og 0x1008"), "0000000000001008: 01777777777777777777777\n");
    EXPECT_EQ(run("xp /1ug 0x1008"), "0000000000001008: 18446744073709551615\n");
    EXPECT_EQ(run("xp /2xg 0x1000"), "0000000000001000: 0x20807f410d0a5c27 0xffffffffffffffff\n");
}

TEST_F(MemoryDumpTest, FormatIsRememberedBetweenCommands)
{
    EXPECT_EQ(run("xp /2ob 0"), "0000000000000000:   0   0\n");
    EXPECT_EQ(run("xp 0"), "0000000000000000:   0\n");
    EXPECT_EQ(run("xp /3 0"), "0000000000000000:   0   0   0\n");
    EXPECT_EQ(run("xp /0x 0"), "");
    EXPECT_EQ(run("xp /x 0x100"), "0000000000000100: 0x00\n");
}

TEST_F(MemoryDumpTest, UnreadableMemoryAndBadFormats)
{
    EXPECT_EQ(run("xp /2x 0x100000000000"), "0000100000000000: Cannot access memory\n");
    EXPECT_EQ(run("x /x 0xffffffffffff0000"), "ffffffffffff0000: Cannot access memory\n");
    EXPECT_EQ(run("xp /x"), "unexpected end of expression\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("x"), "unexpected end of expression\nTry \"help x\" for more information\n");
    EXPECT_EQ(run("xp /s 0"), "invalid char in format: 's'\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("xp /4xq 0"), "invalid char in format: 'q'\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("xp /x 1 2"), "xp: extraneous characters at the end of line\nTry \"help xp\" for more information\n");
}

TEST_F(MemoryDumpTest, HugeCountsAreCapped)
{
    std::string out = run("xp /2000000000xg 0");
    EXPECT_LT(out.size(), k_max_dump_text_bytes + 4096);
    EXPECT_EQ(out.substr(out.size() - std::strlen(k_dump_truncated_line)), k_dump_truncated_line);
}

TEST_F(MemoryDumpTest, ExpressionsInAddresses)
{
    EXPECT_EQ(run("xp /x 'a'"), "0000000000000061: 0x00000000\n");
    EXPECT_EQ(run("xp /x 0x1000-"), "unexpected end of expression\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("xp /x (1+2"), "')' expected\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("xp /x 1/0"), "division by zero\nTry \"help xp\" for more information\n");
    EXPECT_EQ(run("xp /xb 0xffff0+2*2"), "00000000000ffff4: 0xf0\n");
    EXPECT_EQ(run("xp /xb $cs*16+$eip"), "00000000000ffff0: 0xea\n");
    EXPECT_EQ(run("xp /xb $nosuch"), "unknown register\nTry \"help xp\" for more information\n");
}

#if KILN_HAVE_CAPSTONE
TEST_F(MemoryDumpTest, DisassemblyMatchesQemuCapstoneOutput)
{
    EXPECT_EQ(run("x /2i 0xffff0"),
        "0x000ffff0:  ea 5b e0 00 f0           ljmpw    $0xf000:$0xe05b\n"
        "0x000ffff5:  30 36 2f 32              xorb     %dh, 0x322f\n");
    EXPECT_EQ(run("xp /10i 0xffff0"),
        "0x000ffff0:  ea 5b e0 00 f0           ljmpw    $0xf000:$0xe05b\n"
        "0x000ffff5:  30 36 2f 32              xorb     %dh, 0x322f\n"
        "0x000ffff9:  33 2f                    xorw     (%bx), %bp\n"
        "0x000ffffb:  39 39                    cmpw     %di, (%bx, %di)\n"
        "0x000ffffd:  00 fc                    addb     %bh, %ah\n"
        "0x000fffff:  00 00                    addb     %al, (%bx, %si)\n"
        "0x00100001:  00 00                    addb     %al, (%bx, %si)\n"
        "0x00100003:  00 00                    addb     %al, (%bx, %si)\n"
        "0x00100005:  00 00                    addb     %al, (%bx, %si)\n"
        "0x00100007:  00 00                    addb     %al, (%bx, %si)\n");
    EXPECT_EQ(run("xp /3i 0xfffffff0"),
        "0xfffffff0:  ea 5b e0 00 f0           ljmpw    $0xf000:$0xe05b\n"
        "0xfffffff5: unable to read memory\n");
    // /i does not change the remembered unit size.
    EXPECT_EQ(run("xp /ib 0xffff0"), "0x000ffff0:  ea 5b e0 00 f0           ljmpw    $0xf000:$0xe05b\n");
}

TEST_F(MemoryDumpTest, DisassemblyFollowsCpuModeAndSplitsLongInstructions)
{
    // movabs $0x1122334455667788, %rax is 10 bytes: the last two go on a
    // continuation line, as QEMU's cap_dump_insn does.
    machine.poke(0x2000, { 0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x90 });
    CpuRegisters& r = machine.cpu_list[0].regs;
    r.efer = 0x500;
    r.cr0 = 0x80000011;
    r.segs[1].flags = 0x00af9b00;
    EXPECT_EQ(run("x /2i 0x2000"),
        "0x00002000:  48 b8 88 77 66 55 44 33  movabsq  $0x1122334455667788, %rax\n"
        "0x00002008:  22 11\n"
        "0x0000200a:  90                       nop      \n");
}
#endif

} // namespace
} // namespace kiln::monitor
