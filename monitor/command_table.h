// The one command table both front ends use. A command declares its HMP
// and QMP names, its typed arguments and help, and has one implementation
// producing a structured (QAPI-shaped) result; HMP prints that result as
// QEMU's human text, QMP sends it as JSON.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/json_text.h"
#include "monitor/machine_control.h"
#include "util/result.h"

namespace kiln::monitor {

enum class QmpErrorClass { GenericError, CommandNotFound, DeviceNotFound, KVMMissingCap };
const char* qmp_error_class_name(QmpErrorClass error_class);

struct CommandError {
    QmpErrorClass error_class = QmpErrorClass::GenericError;
    std::string desc;

    static CommandError generic(std::string desc) { return { QmpErrorClass::GenericError, std::move(desc) }; }
    // A machine Error becomes a GenericError carrying its message; commands
    // look devices up themselves to answer DeviceNotFound.
    static CommandError from(const Error& error);
};

class CommandResult {
public:
    CommandResult(Json value)
        : m_value(std::move(value))
    {
    }
    CommandResult(CommandError error)
        : m_error(std::move(error))
    {
    }
    CommandResult(const Error& error)
        : m_error(CommandError::from(error))
    {
    }

    bool ok() const { return m_value.has_value(); }
    const Json& value() const { return *m_value; }
    const CommandError& error() const { return *m_error; }

private:
    std::optional<Json> m_value;
    std::optional<CommandError> m_error;
};

// QMP argument types, named as QMP's type errors name them.
enum class ArgType { String, Int, Bool, Array, Any };

struct QmpArg {
    std::string name;
    ArgType type = ArgType::String;
    bool optional = false;
};

class CommandTable;
struct HmpState;

struct CommandContext {
    MachineControl& machine;
    const CommandTable& table;
    // Per-HMP-session state (x/xp defaults, current CPU); null under QMP.
    HmpState* hmp = nullptr;
    // Runs one HMP line with `cpu_index` as the current CPU and returns its
    // text (human-monitor-command).
    std::function<std::string(const std::string& line, int64_t cpu_index)> run_hmp_line;
};

struct Command {
    // HMP: "stop|s" (aliases after '|'); empty for QMP-only commands.
    std::string hmp_name;
    bool info_subcommand = false; // listed under `info`
    std::string hmp_args_type; // QEMU's args_type: "device:B,size:o"
    std::string hmp_params; // "device size" in help
    std::string help;
    // QMP: empty for HMP-only commands.
    std::string qmp_name;
    std::vector<QmpArg> qmp_args;

    std::function<CommandResult(CommandContext&, const Json& args)> run;

    // HMP rendering. hmp_to_args turns the parsed line into run()'s
    // arguments (default: as parsed). hmp_print renders a success (default:
    // a string result is printed as is, anything else prints nothing).
    std::function<CommandResult(CommandContext&, const Json& hmp_args)> hmp_to_args;
    std::function<void(std::string& out, const Json& result, const Json& args)> hmp_print;
    // Errors print as "Error: desc" unless the command prints them bare.
    bool hmp_error_bare = false;

    std::string first_hmp_name() const;
    bool has_hmp_name(std::string_view name) const;
};

// An `info NAME` command, with its QMP name ("" for HMP-only) and help.
Command info_command(std::string name, std::string qmp_name, std::string help);

class CommandTable {
public:
    void add(Command command);

    const Command* find_qmp(std::string_view name) const;
    const Command* find_hmp(std::string_view name) const;
    const Command* find_info(std::string_view name) const;
    const std::vector<Command>& commands() const { return m_commands; }

    // Checks QMP arguments against the command's declaration, with QEMU's
    // messages ("Parameter 'x' is unexpected", "... is missing", "Invalid
    // parameter type for 'x', expected: integer").
    static std::optional<CommandError> check_qmp_args(const Command& command, const Json& args);

private:
    std::vector<Command> m_commands;
};

// Space-separated words (HMP help arguments, completion).
std::vector<std::string> split_words(std::string_view text);

// HMP help text: all commands, `info` subcommands ("info"), or one
// command ("stop", "info status"); "unknown command: 'x'" otherwise.
std::string format_help(const CommandTable& table, std::string_view args);

// The table with every command Kiln has, in an explicit list.
CommandTable build_command_table();

// Registration, one file per group (commands_*.cpp).
void register_vm_commands(CommandTable& table);
void register_info_commands(CommandTable& table);
void register_block_commands(CommandTable& table);
void register_memory_commands(CommandTable& table);
void register_misc_commands(CommandTable& table);

} // namespace kiln::monitor
