// Line editing: key sequences in, resulting line and echoed bytes out.
#include <gtest/gtest.h>

#include "monitor/hmp_session.h"
#include "monitor/line_editor.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class LineEditorTest : public ::testing::Test {
protected:
    std::string echo;
    std::vector<std::string> lines;
    std::vector<std::string> words = { "info", "inject-nmi", "stop", "system_reset", "system_powerdown" };
    LineEditor editor { "(kiln) ", [this](std::string_view s) { echo += s; },
        [this](const std::string& l) { lines.push_back(l); }, [this](const std::string&) { return words; } };
};

TEST_F(LineEditorTest, TypingEchoesAndEnterDeliversTheLine)
{
    editor.feed("stop\r");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "stop");
    EXPECT_EQ(echo, "stop\r\n");
    editor.feed("cont\r\n");
    editor.feed("q\n");
    ASSERT_EQ(lines.size(), 3u); // "\r\n" is one Enter
    EXPECT_EQ(lines[1], "cont");
    EXPECT_EQ(lines[2], "q");
}

TEST_F(LineEditorTest, BackspaceAndDeleteEditTheLine)
{
    editor.feed("stpp");
    echo.clear();
    editor.feed("\x7f");
    EXPECT_EQ(editor.line(), "stp");
    EXPECT_EQ(echo, "\033[1D\033[K");
    editor.feed("\b\bop");
    EXPECT_EQ(editor.line(), "sop");
    editor.feed("\033[D\033[D\033[3~"); // left twice, Delete
    EXPECT_EQ(editor.line(), "sp");
    editor.feed("\033[Ft\x08\x08\x08\x08\x7f"); // End, backspace past the start is a no-op
    EXPECT_EQ(editor.line(), "");
}

TEST_F(LineEditorTest, CursorMovementInsertsMidLine)
{
    editor.feed("info tatus");
    echo.clear();
    editor.feed("\x01"); // Ctrl-A
    EXPECT_EQ(editor.cursor(), 0u);
    EXPECT_EQ(echo, "\033[10D");
    editor.feed("\x05"); // Ctrl-E
    EXPECT_EQ(editor.cursor(), 10u);
    editor.feed("\033[D\033[D\033[D\033[D\033[D");
    echo.clear();
    editor.feed("s");
    EXPECT_EQ(editor.line(), "info status");
    EXPECT_EQ(echo, "status\033[5D"); // tail reprinted, cursor back after the 's'
    editor.feed("\033[H");
    EXPECT_EQ(editor.cursor(), 0u);
    editor.feed("\033[4~");
    EXPECT_EQ(editor.cursor(), 11u);
    editor.feed("\033[1~\x0b"); // Home, Ctrl-K
    EXPECT_EQ(editor.line(), "");
}

TEST_F(LineEditorTest, HistoryWalksUpAndDown)
{
    editor.feed("stop\rcont\rcont\r");
    EXPECT_EQ(editor.history().size(), 2u); // consecutive duplicates collapse
    editor.feed("inf");
    editor.feed("\033[A");
    EXPECT_EQ(editor.line(), "cont");
    editor.feed("\033[A");
    EXPECT_EQ(editor.line(), "stop");
    editor.feed("\033[A"); // at the oldest entry: stays
    EXPECT_EQ(editor.line(), "stop");
    editor.feed("\033[B");
    EXPECT_EQ(editor.line(), "cont");
    editor.feed("\033[B"); // back to the line being typed
    EXPECT_EQ(editor.line(), "inf");
    editor.feed("\033[A\r");
    EXPECT_EQ(lines.back(), "cont");
}

TEST_F(LineEditorTest, TabCompletesUniqueAndCommonPrefixes)
{
    editor.feed("st\t");
    EXPECT_EQ(editor.line(), "stop ");
    editor.feed("\x15"); // Ctrl-U
    EXPECT_EQ(editor.line(), "");
    editor.feed("sy\t");
    EXPECT_EQ(editor.line(), "system_");
    echo.clear();
    editor.feed("\t"); // ambiguous: list and redraw
    EXPECT_EQ(echo, "\r\nsystem_powerdown  system_reset  \r\n(kiln) system_");
    editor.feed("r\t");
    EXPECT_EQ(editor.line(), "system_reset ");
}

TEST_F(LineEditorTest, OverlongLinesAreCapped)
{
    editor.feed(std::string(LineEditor::k_max_line_bytes + 100, 'a'));
    EXPECT_EQ(editor.line().size(), LineEditor::k_max_line_bytes);
}

TEST(HmpSessionTest, PromptCommandOutputAndCompletionOverTheTable)
{
    testing::FakeMachine machine;
    CommandTable table = build_command_table();
    std::string out;
    HmpSession session(table, machine, [&out](std::string_view s) { out += s; });
    session.start();
    EXPECT_EQ(out, hmp_banner() + "\r\n(kiln) ");
    out.clear();
    session.feed("info sta\t\r");
    EXPECT_EQ(out, "info status \r\nVM status: paused (prelaunch)\r\n(kiln) ");
    out.clear();
    session.feed("info c\t");
    EXPECT_EQ(out, "info c\r\nchardev  cpus  \r\n(kiln) info c"); // ambiguous: both listed
    session.feed("\x15"
                 "eject i\t");
    EXPECT_EQ(session.editor().line(), "eject ide");
    session.feed("\x15"
                 "sys\t");
    EXPECT_EQ(session.editor().line(), "system_");
}

} // namespace
} // namespace kiln::monitor
