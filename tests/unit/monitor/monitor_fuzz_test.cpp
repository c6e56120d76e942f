// Bad input never crashes the monitor: random bytes and random argument
// soup through both front ends (fixed seed, so failures reproduce), and
// the sessions still answer afterwards.
#include <random>

#include <gtest/gtest.h>

#include "monitor/hmp_session.h"
#include "monitor/qmp_session.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

std::string random_bytes(std::mt19937& rng, size_t length, std::string_view alphabet)
{
    std::string out;
    for (size_t i = 0; i < length; ++i) {
        if (rng() % 4 == 0)
            out += char(rng() % 256);
        else
            out += alphabet[rng() % alphabet.size()];
    }
    return out;
}

TEST(MonitorFuzzTest, QmpSurvivesRandomBytes)
{
    testing::FakeMachine machine;
    CommandTable table = build_command_table();
    size_t replies = 0;
    QmpSession session(table, machine, [&](std::string_view) { ++replies; });
    session.feed(R"({"execute":"qmp_capabilities"})");
    std::mt19937 rng(1234);
    const std::string_view alphabet = "{}[]\"':,\\ \n0123456789-eEtruefalsnl.executeargumentsid";
    for (int i = 0; i < 3000; ++i)
        session.feed(random_bytes(rng, rng() % 64, alphabet));
    // Whatever state the noise left (perhaps inside a string), it was
    // answered with errors along the way and nothing crashed.
    EXPECT_GT(replies, 100u);
}

TEST(MonitorFuzzTest, EveryQmpRequestGetsExactlyOneReply)
{
    testing::FakeMachine machine;
    CommandTable table = build_command_table();
    std::vector<std::string> lines;
    QmpSession session(table, machine, [&](std::string_view s) { lines.emplace_back(s); });
    session.feed(R"({"execute":"qmp_capabilities"})");
    std::mt19937 rng(4321);
    for (const auto& command : table.commands()) {
        if (command.qmp_name.empty() || command.qmp_name == "quit")
            continue;
        for (int i = 0; i < 50; ++i) {
            Json args = Json::object();
            for (const auto& arg : command.qmp_args) {
                switch (rng() % 6) {
                case 0:
                    args[arg.name] = int64_t(rng()) - int64_t(rng());
                    break;
                case 1:
                    args[arg.name] = random_bytes(rng, rng() % 8, "abc/-0x");
                    break;
                case 2:
                    args[arg.name] = bool(rng() % 2);
                    break;
                case 3:
                    args[arg.name] = Json::array({ Json::object(), 1, "x" });
                    break;
                case 4:
                    args[arg.name] = Json::array({ Json { { "type", "qcode" }, { "data", "a" } } });
                    break;
                default:
                    break; // leave it out
                }
            }
            if (command.qmp_name == "memsave" || command.qmp_name == "pmemsave")
                args["filename"] = "/dev/null";
            lines.clear();
            // Random bytes inside strings may be invalid UTF-8: the reply
            // must still be one well-formed line.
            session.feed(to_qmp_text(Json { { "execute", command.qmp_name }, { "arguments", args }, { "id", i } }));
            ASSERT_EQ(lines.size(), 1u) << command.qmp_name;
            Json reply = Json::parse(lines[0], nullptr, false);
            ASSERT_FALSE(reply.is_discarded()) << lines[0];
            EXPECT_TRUE(reply.contains("return") || reply.contains("error")) << lines[0];
        }
    }
}

TEST(MonitorFuzzTest, HmpSurvivesRandomLines)
{
    testing::FakeMachine machine;
    CommandTable table = build_command_table();
    std::string out;
    HmpSession session(table, machine, [&](std::string_view s) { out += s; });
    session.start();
    std::mt19937 rng(99);
    std::vector<std::string> names = { "info", "help" };
    for (const auto& c : table.commands())
        if (!c.hmp_name.empty())
            names.push_back((c.info_subcommand ? "info " : "") + c.first_hmp_name());
    const std::string_view alphabet = " /\"'\\$()+-*%&|^~0x1fabcdefgi-ol\t\033[A~";
    for (int i = 0; i < 4000; ++i) {
        std::string line = names[rng() % names.size()];
        if (line == "quit" || line == "memsave" || line == "pmemsave")
            continue;
        line += " " + random_bytes(rng, rng() % 24, alphabet);
        for (char& c : line)
            if (c == '\r' || c == '\n')
                c = ' ';
        session.feed(line + "\r");
    }
    session.feed("\x15\033[B\033[B\033[Binfo name\r"); // clear, leave history, ask something simple
    EXPECT_NE(out.rfind("info name\r\ntestvm\r\n(kiln) "), std::string::npos);
}

} // namespace
} // namespace kiln::monitor
