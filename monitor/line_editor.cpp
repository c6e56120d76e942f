#include "monitor/line_editor.h"

#include <algorithm>

namespace kiln::monitor {

namespace {

std::string cursor_left(size_t n) { return n == 0 ? "" : "\033[" + std::to_string(n) + "D"; }
std::string cursor_right(size_t n) { return n == 0 ? "" : "\033[" + std::to_string(n) + "C"; }

} // namespace

LineEditor::LineEditor(std::string prompt, Echo echo, OnLine on_line, Complete complete)
    : m_prompt(std::move(prompt))
    , m_echo(std::move(echo))
    , m_on_line(std::move(on_line))
    , m_complete(std::move(complete))
{
}

void LineEditor::show_prompt() { m_echo(m_prompt); }

void LineEditor::restart()
{
    m_line.clear();
    m_cursor = 0;
    m_esc = EscState::None;
    m_csi_params.clear();
    m_last_was_cr = false;
    m_history_index = m_history.size();
    m_saved_line.clear();
    show_prompt();
}

void LineEditor::feed(std::string_view bytes)
{
    for (char c : bytes)
        key(c);
}

void LineEditor::key(char c)
{
    if (m_esc == EscState::Esc) {
        if (c == '[' || c == 'O') {
            m_esc = EscState::Csi;
            m_csi_params.clear();
        } else {
            m_esc = EscState::None;
        }
        return;
    }
    if (m_esc == EscState::Csi) {
        if ((c >= '0' && c <= '9') || c == ';') {
            if (m_csi_params.size() < 16)
                m_csi_params += c;
            return;
        }
        m_esc = EscState::None;
        csi(c);
        return;
    }
    bool was_cr = m_last_was_cr;
    m_last_was_cr = c == '\r';
    switch (c) {
    case '\r':
        enter();
        return;
    case '\n':
        if (!was_cr) // "\r\n" from a terminal is one Enter
            enter();
        return;
    case 27:
        m_esc = EscState::Esc;
        return;
    case 1:
        move_to(0);
        return; // Ctrl-A
    case 5:
        move_to(m_line.size());
        return; // Ctrl-E
    case 2:
        if (m_cursor > 0)
            move_to(m_cursor - 1);
        return; // Ctrl-B
    case 6:
        if (m_cursor < m_line.size())
            move_to(m_cursor + 1);
        return; // Ctrl-F
    case 4:
        delete_at_cursor();
        return; // Ctrl-D
    case 8:
    case 127:
        backspace();
        return;
    case 9:
        complete();
        return;
    case 11: // Ctrl-K: kill to end of line
        m_line.erase(m_cursor);
        m_echo("\033[K");
        return;
    case 21: { // Ctrl-U: kill to start of line
        size_t old = m_cursor;
        m_line.erase(0, m_cursor);
        m_cursor = 0;
        m_echo(cursor_left(old));
        redraw_from(0);
        return;
    }
    case 16:
        history_step(-1);
        return; // Ctrl-P
    case 14:
        history_step(+1);
        return; // Ctrl-N
    default:
        if (uint8_t(c) >= 32)
            insert(c);
        return;
    }
}

void LineEditor::csi(char final_byte)
{
    switch (final_byte) {
    case 'A':
        history_step(-1);
        break;
    case 'B':
        history_step(+1);
        break;
    case 'C':
        if (m_cursor < m_line.size())
            move_to(m_cursor + 1);
        break;
    case 'D':
        if (m_cursor > 0)
            move_to(m_cursor - 1);
        break;
    case 'H':
        move_to(0);
        break;
    case 'F':
        move_to(m_line.size());
        break;
    case '~':
        if (m_csi_params == "1" || m_csi_params == "7")
            move_to(0);
        else if (m_csi_params == "4" || m_csi_params == "8")
            move_to(m_line.size());
        else if (m_csi_params == "3")
            delete_at_cursor();
        break;
    default:
        break;
    }
}

void LineEditor::insert(char c)
{
    if (m_line.size() >= k_max_line_bytes)
        return;
    m_line.insert(m_cursor, 1, c);
    ++m_cursor;
    if (m_cursor == m_line.size()) {
        m_echo(std::string_view(&c, 1));
        return;
    }
    // Mid-line: print the tail and step back to the cursor.
    std::string out = m_line.substr(m_cursor - 1);
    out += cursor_left(m_line.size() - m_cursor);
    m_echo(out);
}

void LineEditor::backspace()
{
    if (m_cursor == 0)
        return;
    m_line.erase(m_cursor - 1, 1);
    --m_cursor;
    m_echo(cursor_left(1));
    redraw_from(m_cursor);
}

void LineEditor::delete_at_cursor()
{
    if (m_cursor >= m_line.size())
        return;
    m_line.erase(m_cursor, 1);
    redraw_from(m_cursor);
}

// Reprints the line from `position` (where the terminal cursor is), clears
// what is left of the old text and returns to m_cursor.
void LineEditor::redraw_from(size_t position)
{
    std::string out = m_line.substr(position);
    out += "\033[K";
    out += cursor_left(m_line.size() - m_cursor);
    m_echo(out);
}

void LineEditor::move_to(size_t position)
{
    position = std::min(position, m_line.size());
    if (position < m_cursor)
        m_echo(cursor_left(m_cursor - position));
    else if (position > m_cursor)
        m_echo(cursor_right(position - m_cursor));
    m_cursor = position;
}

void LineEditor::set_line(const std::string& text)
{
    m_echo(cursor_left(m_cursor));
    m_line = text.substr(0, k_max_line_bytes);
    m_cursor = m_line.size();
    redraw_from(0);
}

void LineEditor::enter()
{
    m_echo("\r\n");
    std::string line = std::move(m_line);
    m_line.clear();
    m_cursor = 0;
    bool blank = line.find_first_not_of(" \t") == std::string::npos;
    if (!blank && (m_history.empty() || m_history.back() != line)) {
        m_history.push_back(line);
        if (m_history.size() > k_max_history)
            m_history.erase(m_history.begin());
    }
    m_history_index = m_history.size();
    m_saved_line.clear();
    m_on_line(line);
}

void LineEditor::history_step(int direction)
{
    if (direction < 0) {
        if (m_history_index == 0)
            return;
        if (m_history_index == m_history.size())
            m_saved_line = m_line;
        --m_history_index;
        set_line(m_history[m_history_index]);
    } else {
        if (m_history_index >= m_history.size())
            return;
        ++m_history_index;
        set_line(m_history_index == m_history.size() ? m_saved_line : m_history[m_history_index]);
    }
}

void LineEditor::complete()
{
    if (!m_complete)
        return;
    std::string before = m_line.substr(0, m_cursor);
    size_t word_start = before.find_last_of(' ');
    word_start = word_start == std::string::npos ? 0 : word_start + 1;
    std::string word = before.substr(word_start);
    std::vector<std::string> candidates;
    for (auto& c : m_complete(before))
        if (c.rfind(word, 0) == 0)
            candidates.push_back(c);
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    if (candidates.empty())
        return;
    // Extend to the longest common prefix; a single match also gets a space.
    std::string common = candidates[0];
    for (const auto& c : candidates) {
        size_t n = 0;
        while (n < common.size() && n < c.size() && common[n] == c[n])
            ++n;
        common.resize(n);
    }
    std::string addition = common.substr(word.size());
    if (candidates.size() == 1)
        addition += ' ';
    if (!addition.empty()) {
        for (char c : addition)
            insert(c);
        return;
    }
    // Ambiguous and nothing to add: list the candidates, then redraw.
    std::string out = "\r\n";
    for (const auto& c : candidates)
        out += c + "  ";
    out += "\r\n" + m_prompt + m_line + cursor_left(m_line.size() - m_cursor);
    m_echo(out);
}

} // namespace kiln::monitor
