// QMP's wire spelling of JSON: QEMU separates members with ", " and keys
// from values with ": " on one line; clients and golden tests compare text.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kiln::monitor {

// Insertion-ordered so replies read as the QAPI schema lists members.
using Json = nlohmann::ordered_json;

std::string to_qmp_text(const Json& value);

} // namespace kiln::monitor
