// HmpSession: one HMP client: banner, "(kiln) " prompt, line editing and
// completion, commands run through HmpExecutor, output with "\r\n" line
// ends as QEMU's monitor writes them. Transport-free: bytes in via feed(),
// bytes out via the send callback.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "monitor/hmp_executor.h"
#include "monitor/line_editor.h"

namespace kiln::monitor {

class HmpSession {
public:
    using Send = std::function<void(std::string_view)>;

    HmpSession(const CommandTable& table, MachineControl& machine, Send send);

    // Writes the banner and the first prompt.
    void start();
    void feed(std::string_view bytes);
    // A Ctrl-A mux moved the keyboard to (true) or away from the monitor.
    void focus(bool focused);

    const LineEditor& editor() const { return m_editor; }

    // Candidate words for the word being typed (tab completion).
    std::vector<std::string> completions(const std::string& before_cursor) const;

private:
    void run_line(const std::string& line);
    void send_text(std::string_view text);

    const CommandTable& m_table;
    MachineControl& m_machine;
    Send m_send;
    HmpExecutor m_executor;
    LineEditor m_editor;
};

// "Kiln 0.1.0 monitor - type 'help' for more information"
std::string hmp_banner();

} // namespace kiln::monitor
