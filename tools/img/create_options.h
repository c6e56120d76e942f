// The creation options of each format as `create -o help` lists them and
// the order in which "Formatting '...'" prints them (QEMU prints options
// in its descriptor order, defaults included).
#pragma once

#include <string>
#include <vector>

#include "block/context.h"
#include "util/options.h"

namespace kiln::tools {

struct CreateOptionDesc {
    const char* name;
    const char* type; // "str", "size", "bool", "num"
    const char* help;
    const char* default_value; // printed by "Formatting" when unset; may be null
};

// Format-level options, in print order. Falls back to the driver's own
// list for formats this table does not know.
std::vector<CreateOptionDesc> format_create_options(const block::FormatDriver& driver);
// Options of the file protocol (appended when a target file name is known).
std::vector<CreateOptionDesc> protocol_create_options();

// `create -o help`: "Supported <fmt> options:" and the sorted list.
std::string create_options_help(const block::FormatDriver& driver, bool with_protocol);

// Checks every option is known; error "Invalid parameter 'x'".
Result<void> validate_create_options(const block::FormatDriver& driver, const OptionList& options);

// "fmt=qcow2 cluster_size=65536 ... size=N ..." for the Formatting line.
std::string formatting_line_options(const block::FormatDriver& driver, const OptionList& options,
                                    uint64_t size_bytes);

} // namespace kiln::tools
