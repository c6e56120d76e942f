// JSON output as QEMU prints it: qobject_to_json_pretty's layout (4-space
// indent, "{\n}" for empty objects) and QDict's iteration order, which is
// the order of its hash buckets rather than insertion order. Scripts that
// diff qemu-img's JSON byte for byte depend on that order.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kiln::tools {

using Json = nlohmann::ordered_json;

// Members must be inserted in QAPI schema order: keys that share a bucket
// come out newest first, as QDict's per-bucket list does.
std::string qjson_pretty(const Json& value);

// Bucket QDict puts `key` in (tdb_hash modulo 512).
unsigned qdict_bucket(const std::string& key);

// Keys of an object in QDict iteration order.
std::vector<std::string> qdict_order(const Json& object);

} // namespace kiln::tools
