// LineEditor: the HMP terminal's line editing over a raw byte stream
// (QEMU's readline): printable insertion at the cursor, Backspace/Delete,
// Left/Right/Home/End (arrows, ESC [ H/F, ESC [ 1~/4~, Ctrl-A/E/B/F),
// Ctrl-K/Ctrl-U kill, Up/Down history, Tab completion through a callback.
// Echo and redraw go through `echo` as VT100 sequences.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::monitor {

class LineEditor {
public:
    using Echo = std::function<void(std::string_view)>;
    using OnLine = std::function<void(const std::string&)>;
    // Given the text before the cursor, returns the candidate words for
    // the word being typed (full words, not suffixes).
    using Complete = std::function<std::vector<std::string>(const std::string& before_cursor)>;

    static constexpr size_t k_max_line_bytes = 4096;
    static constexpr size_t k_max_history = 64;

    LineEditor(std::string prompt, Echo echo, OnLine on_line, Complete complete = {});

    void feed(std::string_view bytes);
    void show_prompt();
    // A fresh, empty line and the prompt (the mux gave the monitor the
    // keyboard back, as QEMU's readline_restart).
    void restart();

    const std::string& line() const { return m_line; }
    size_t cursor() const { return m_cursor; }
    const std::vector<std::string>& history() const { return m_history; }

private:
    enum class EscState { None, Esc, Csi };

    void key(char c);
    void csi(char final_byte);
    void insert(char c);
    void backspace();
    void delete_at_cursor();
    void move_to(size_t position);
    void redraw_from(size_t position);
    void set_line(const std::string& text);
    void enter();
    void history_step(int direction);
    void complete();

    std::string m_prompt;
    Echo m_echo;
    OnLine m_on_line;
    Complete m_complete;
    std::string m_line;
    size_t m_cursor = 0;
    EscState m_esc = EscState::None;
    std::string m_csi_params;
    bool m_last_was_cr = false;
    std::vector<std::string> m_history;
    size_t m_history_index = 0; // == size(): editing a new line
    std::string m_saved_line; // the new line while browsing history
};

} // namespace kiln::monitor
