#include "monitor/hmp_session.h"

namespace kiln::monitor {

#ifndef KILN_VERSION
#define KILN_VERSION "0.1.0"
#endif

std::string hmp_banner() { return std::string("Kiln ") + KILN_VERSION + " monitor - type 'help' for more information"; }

HmpSession::HmpSession(const CommandTable& table, MachineControl& machine, Send send)
    : m_table(table)
    , m_machine(machine)
    , m_send(std::move(send))
    , m_executor(table, machine)
    , m_editor(
          "(kiln) ", [this](std::string_view bytes) { m_send(bytes); },
          [this](const std::string& line) { run_line(line); },
          [this](const std::string& before) { return completions(before); })
{
}

void HmpSession::start()
{
    send_text(hmp_banner() + "\n");
    m_editor.show_prompt();
}

void HmpSession::feed(std::string_view bytes) { m_editor.feed(bytes); }

void HmpSession::focus(bool focused)
{
    // As QEMU: a new line when the console takes over, a fresh prompt when
    // the monitor comes back.
    if (focused)
        m_editor.restart();
    else
        send_text("\n");
}

void HmpSession::send_text(std::string_view text)
{
    std::string out;
    out.reserve(text.size() + 16);
    for (char c : text) {
        if (c == '\n')
            out += '\r';
        out += c;
    }
    m_send(out);
}

void HmpSession::run_line(const std::string& line)
{
    send_text(m_executor.execute(line));
    m_editor.show_prompt();
}

std::vector<std::string> HmpSession::completions(const std::string& before_cursor) const
{
    // Words typed so far, and whether the cursor is inside the first word.
    std::vector<std::string> words = split_words(before_cursor);
    bool new_word = before_cursor.empty() || before_cursor.back() == ' ';
    size_t index = new_word ? words.size() : words.size() - 1; // which word is being completed
    std::vector<std::string> out;
    auto add_names = [&out](const Command& c) {
        size_t start = 0;
        for (;;) {
            size_t bar = c.hmp_name.find('|', start);
            out.push_back(c.hmp_name.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
            if (bar == std::string::npos)
                break;
            start = bar + 1;
        }
    };
    if (index == 0) {
        for (const auto& c : m_table.commands())
            if (!c.hmp_name.empty() && !c.info_subcommand)
                add_names(c);
        out.push_back("info");
        return out;
    }
    if (index == 1 && (words[0] == "info" || words[0] == "help" || words[0] == "?")) {
        for (const auto& c : m_table.commands())
            if (c.info_subcommand || (words[0] != "info" && !c.hmp_name.empty()))
                add_names(c);
        return out;
    }
    // A block device argument: offer the drive names.
    const Command* command = m_table.find_hmp(words[0]);
    if (command && command->hmp_args_type.find(":B") != std::string::npos)
        for (const auto& d : m_machine.block_devices())
            out.push_back(d.device);
    return out;
}

} // namespace kiln::monitor
