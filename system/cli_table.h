// The table of QEMU command-line options Kiln knows: whether each takes an
// argument and whether Kiln implements it. Options QEMU has but Kiln does
// not are listed so users get "unsupported option" rather than "invalid".
#pragma once

#include <string_view>

namespace kiln::system {

enum class OptionArg { None, Required };
enum class OptionStatus { Supported, Unsupported };

struct OptionInfo {
    std::string_view name; // without the leading dash
    OptionArg arg;
    OptionStatus status;
};

// nullptr for a name QEMU does not have either.
const OptionInfo* find_option(std::string_view name);

} // namespace kiln::system
