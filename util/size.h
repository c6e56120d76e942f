// Sizes as qemu-img spells them: 512, 4k, 20G, 1.5T (binary units, an
// optional B, case-insensitive suffixes), and formatting in its styles.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace kiln {

// Parses a size; `default_unit` applies when no suffix is given (qemu-img
// uses bytes; -m uses MiB). Rejects negatives, overflow, junk.
Result<uint64_t> parse_size(std::string_view text, uint64_t default_unit = 1);

// "1 GiB", "512 KiB", "1.5 GiB", "0 B": qemu-img's human sizes (size_to_str).
std::string format_size_human(uint64_t bytes);

} // namespace kiln
