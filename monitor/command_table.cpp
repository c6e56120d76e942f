#include "monitor/command_table.h"

namespace kiln::monitor {

const char* qmp_error_class_name(QmpErrorClass error_class)
{
    switch (error_class) {
    case QmpErrorClass::GenericError:
        return "GenericError";
    case QmpErrorClass::CommandNotFound:
        return "CommandNotFound";
    case QmpErrorClass::DeviceNotFound:
        return "DeviceNotFound";
    case QmpErrorClass::KVMMissingCap:
        return "KVMMissingCap";
    }
    return "GenericError";
}

CommandError CommandError::from(const Error& error) { return generic(error.message()); }

std::string Command::first_hmp_name() const
{
    auto bar = hmp_name.find('|');
    return bar == std::string::npos ? hmp_name : hmp_name.substr(0, bar);
}

bool Command::has_hmp_name(std::string_view name) const
{
    std::string_view rest = hmp_name;
    while (!rest.empty()) {
        auto bar = rest.find('|');
        if (rest.substr(0, bar) == name)
            return true;
        if (bar == std::string_view::npos)
            break;
        rest.remove_prefix(bar + 1);
    }
    return false;
}

Command info_command(std::string name, std::string qmp_name, std::string help)
{
    Command c;
    c.hmp_name = std::move(name);
    c.info_subcommand = true;
    c.qmp_name = std::move(qmp_name);
    c.help = std::move(help);
    return c;
}

void CommandTable::add(Command command) { m_commands.push_back(std::move(command)); }

const Command* CommandTable::find_qmp(std::string_view name) const
{
    for (const auto& command : m_commands)
        if (!command.qmp_name.empty() && command.qmp_name == name)
            return &command;
    return nullptr;
}

const Command* CommandTable::find_hmp(std::string_view name) const
{
    for (const auto& command : m_commands)
        if (!command.info_subcommand && !command.hmp_name.empty() && command.has_hmp_name(name))
            return &command;
    return nullptr;
}

const Command* CommandTable::find_info(std::string_view name) const
{
    for (const auto& command : m_commands)
        if (command.info_subcommand && command.has_hmp_name(name))
            return &command;
    return nullptr;
}

static const char* type_word(ArgType type)
{
    switch (type) {
    case ArgType::String:
        return "string";
    case ArgType::Int:
        return "integer";
    case ArgType::Bool:
        return "boolean";
    case ArgType::Array:
        return "array";
    case ArgType::Any:
        return "any";
    }
    return "any";
}

static bool type_matches(ArgType type, const Json& value)
{
    switch (type) {
    case ArgType::String:
        return value.is_string();
    case ArgType::Int:
        return value.is_number_integer();
    case ArgType::Bool:
        return value.is_boolean();
    case ArgType::Array:
        return value.is_array();
    case ArgType::Any:
        return true;
    }
    return false;
}

std::optional<CommandError> CommandTable::check_qmp_args(const Command& command, const Json& args)
{
    // QEMU reports members in the order of the schema first (missing or
    // mistyped), then anything left over as unexpected.
    for (const auto& arg : command.qmp_args) {
        auto it = args.find(arg.name);
        if (it == args.end()) {
            if (!arg.optional)
                return CommandError::generic("Parameter '" + arg.name + "' is missing");
            continue;
        }
        if (!type_matches(arg.type, *it))
            return CommandError::generic(
                "Invalid parameter type for '" + arg.name + "', expected: " + type_word(arg.type));
    }
    for (auto it = args.begin(); it != args.end(); ++it) {
        bool known = false;
        for (const auto& arg : command.qmp_args)
            known = known || arg.name == it.key();
        if (!known)
            return CommandError::generic("Parameter '" + it.key() + "' is unexpected");
    }
    return std::nullopt;
}

CommandTable build_command_table()
{
    CommandTable table;
    register_vm_commands(table);
    register_info_commands(table);
    register_block_commands(table);
    register_memory_commands(table);
    register_misc_commands(table);
    return table;
}

} // namespace kiln::monitor
