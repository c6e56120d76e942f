// Phase 1 of start-up: argv -> an ordered list of (option, value) pairs.
// Only the option grammar is checked here (known option, argument
// present); values are interpreted by machine_config.cpp.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace kiln::system {

struct ParsedOption {
    std::string name;  // canonical, without dashes ("m", "serial")
    std::string value; // empty for flags
};

struct ParsedArgs {
    std::vector<ParsedOption> options;
    // All values given for `name`, in order.
    std::vector<std::string> all(const std::string& name) const;
    // Last value given (QEMU lets later ones win), or nullptr.
    const std::string* last(const std::string& name) const;
    bool has(const std::string& name) const { return last(name) != nullptr; }
};

// Errors read "-X: unsupported option", "-X: invalid option",
// "-X: requires an argument" (main prefixes "kiln: ").
Result<ParsedArgs> parse_args(const std::vector<std::string>& argv);

} // namespace kiln::system
