#include "monitor/hmp_executor.h"

namespace kiln::monitor {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// QEMU's get_command_name: a command name ends at a space or at '/', so
// "x/4xb 0" names x.
std::string_view take_name(std::string_view& text)
{
    while (!text.empty() && is_space(text.front()))
        text.remove_prefix(1);
    size_t end = 0;
    while (end < text.size() && text[end] != '/' && !is_space(text[end]))
        ++end;
    std::string_view name = text.substr(0, end);
    text.remove_prefix(end);
    return name;
}

} // namespace

std::string HmpExecutor::execute(std::string_view line)
{
    std::string_view rest = line;
    std::string_view name = take_name(rest);
    if (name.empty())
        return "";
    if (name == "info") {
        std::string_view sub = take_name(rest);
        if (sub.empty())
            return format_help(m_table, "info");
        const Command* command = m_table.find_info(sub);
        if (!command)
            return "unknown command: 'info " + std::string(sub) + "'\n";
        return run(*command, command->hmp_name, "info " + std::string(sub), rest);
    }
    const Command* command = m_table.find_hmp(name);
    if (!command)
        return "unknown command: '" + std::string(name) + "'\n";
    return run(*command, command->hmp_name, name, rest);
}

std::string HmpExecutor::run(
    const Command& command, std::string_view display_name, std::string_view help_name, std::string_view args)
{
    auto parsed = parse_hmp_args(command, display_name, args, m_state, &m_machine);
    if (!parsed)
        return parsed.error().message() + "\nTry \"help " + std::string(help_name) + "\" for more information\n";
    CommandContext ctx { m_machine, m_table, &m_state, {} };
    ctx.run_hmp_line = [this](const std::string& nested, int64_t cpu_index) {
        int64_t saved = m_state.current_cpu;
        m_state.current_cpu = cpu_index;
        std::string out = execute(nested);
        m_state.current_cpu = saved;
        return out;
    };
    Json run_args = parsed.value();
    if (command.hmp_to_args) {
        CommandResult converted = command.hmp_to_args(ctx, run_args);
        if (!converted.ok())
            return (command.hmp_error_bare ? "" : "Error: ") + converted.error().desc + "\n";
        run_args = converted.value();
    }
    CommandResult result = command.run(ctx, run_args);
    if (!result.ok())
        return (command.hmp_error_bare ? "" : "Error: ") + result.error().desc + "\n";
    std::string out;
    if (command.hmp_print)
        command.hmp_print(out, result.value(), run_args);
    else if (result.value().is_string())
        out = result.value().get<std::string>();
    return out;
}

} // namespace kiln::monitor
