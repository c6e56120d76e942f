// telnet: monitors: QEMU's option offer, and negotiation filtered out of
// what the client types.
#include <gtest/gtest.h>

#include "monitor/telnet.h"

namespace kiln::monitor {
namespace {

std::string bytes(std::initializer_list<int> b)
{
    std::string s;
    for (int c : b)
        s += char(c);
    return s;
}

TEST(Telnet, GreetingOffersEchoSuppressGoAheadAndBinary)
{
    EXPECT_EQ(telnet_greeting(), bytes({ 255, 251, 1, 255, 251, 3, 255, 251, 0, 255, 253, 0 }));
}

TEST(Telnet, NegotiationIsRemovedAndDataKept)
{
    TelnetFilter f;
    // DO ECHO, WILL NAWS, a NAWS subnegotiation, then "info status" CR NUL.
    std::string in
        = bytes({ 255, 253, 1, 255, 251, 31, 255, 250, 31, 0, 80, 0, 24, 255, 240 }) + "info status\r" + bytes({ 0 });
    EXPECT_EQ(f.filter(in), "info status\r");
    EXPECT_EQ(f.filter(bytes({ 'a', 255, 255, 'b' })), bytes({ 'a', 255, 'b' })); // IAC IAC = data 0xff
    EXPECT_EQ(f.filter("\r\n"), "\r\n"); // CR LF is kept
}

TEST(Telnet, SequencesSplitAcrossReads)
{
    TelnetFilter f;
    std::string out;
    std::string in = bytes({ 255, 253, 3, 'x', 255, 250, 24, 1, 255, 240, 'y', '\r', 0, 'z' });
    for (char c : in)
        out += f.filter(std::string_view(&c, 1));
    EXPECT_EQ(out, "xy\rz");
}

} // namespace
} // namespace kiln::monitor
