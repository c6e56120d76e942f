// Runs one HMP command line against the command table and returns the
// text QEMU's monitor would print for it (with '\n' line ends; terminal
// front ends turn them into "\r\n").
#pragma once

#include <string>
#include <string_view>

#include "monitor/command_table.h"
#include "monitor/hmp_args.h"

namespace kiln::monitor {

class HmpExecutor {
public:
    HmpExecutor(const CommandTable& table, MachineControl& machine)
        : m_table(table)
        , m_machine(machine)
    {
    }

    std::string execute(std::string_view line);

    HmpState& state() { return m_state; }
    const CommandTable& table() const { return m_table; }

private:
    std::string run(
        const Command& command, std::string_view display_name, std::string_view help_name, std::string_view args);

    const CommandTable& m_table;
    MachineControl& m_machine;
    HmpState m_state;
};

} // namespace kiln::monitor
