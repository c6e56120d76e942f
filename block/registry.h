// The formats Kiln knows, as an explicit list (no static registration).
#pragma once

#include <vector>

#include "block/context.h"

namespace kiln::block {

// Each driver folder defines its accessor.
const FormatDriver& raw_format_driver();
const FormatDriver& qcow2_format_driver();
const FormatDriver& luks_format_driver();

// In probe order.
std::vector<const FormatDriver*> all_format_drivers();

} // namespace kiln::block
