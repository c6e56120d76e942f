// HMP argument parsing with QEMU's args_type conventions and its
// expression syntax for integers (+ - * / % & | ^ ~, parentheses, 'c'
// character constants, $register). Errors carry QEMU's wording; the
// caller adds the "Try \"help x\"" line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "monitor/command_table.h"
#include "util/result.h"

namespace kiln::monitor {

// Per-HMP-session state that persists between commands, as in QEMU.
struct HmpState {
    char last_format = 'x'; // x/xp remember the last format and unit size
    int last_size = 4;
    int64_t current_cpu = 0; // the `cpu` command's choice
};

// Evaluates one expression at the start of `text`; advances `text` past
// it and any trailing spaces. `machine` resolves $registers (may be null).
Result<int64_t> parse_hmp_expression(std::string_view& text, MachineControl* machine, const HmpState& state);

// Parses `args` (the line after the command name) per command.hmp_args_type
// into a JSON object keyed by argument name. `display_name` is how QEMU
// names the command in errors ("stop|s", "cpus").
Result<Json> parse_hmp_args(const Command& command, std::string_view display_name, std::string_view args,
    HmpState& state, MachineControl* machine);

} // namespace kiln::monitor
