#include "tools/common/qjson.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace kiln::tools {

unsigned qdict_bucket(const std::string& key)
{
    // QDict hashes with TDB's string hash and keeps 512 buckets.
    uint32_t value = uint32_t(0x238F13AF) * uint32_t(key.size());
    for (size_t i = 0; i < key.size(); ++i)
        value = value + (uint32_t((unsigned char)key[i]) << (i * 5 % 24));
    return (uint32_t(1103515243) * value + 12345) % 512;
}

std::vector<std::string> qdict_order(const Json& object)
{
    std::vector<std::pair<std::string, size_t>> keys;
    size_t index = 0;
    for (auto it = object.begin(); it != object.end(); ++it)
        keys.emplace_back(it.key(), index++);
    std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
        unsigned ba = qdict_bucket(a.first), bb = qdict_bucket(b.first);
        if (ba != bb)
            return ba < bb;
        return a.second > b.second; // newest first within a bucket
    });
    std::vector<std::string> out;
    for (auto& k : keys)
        out.push_back(k.first);
    return out;
}

static void quoted(std::string& out, const std::string& s)
{
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04X", c);
                out += buf;
            } else {
                out += char(c);
            }
        }
    }
    out += '"';
}

static void newline(std::string& out, int depth)
{
    out += '\n';
    out.append(size_t(depth) * 4, ' ');
}

static void emit(std::string& out, const Json& v, int depth)
{
    switch (v.type()) {
    case Json::value_t::object: {
        out += '{';
        bool first = true;
        for (const std::string& key : qdict_order(v)) {
            if (!first)
                out += ',';
            first = false;
            newline(out, depth + 1);
            quoted(out, key);
            out += ": ";
            emit(out, v.at(key), depth + 1);
        }
        newline(out, depth);
        out += '}';
        break;
    }
    case Json::value_t::array: {
        out += '[';
        bool first = true;
        for (const Json& item : v) {
            if (!first)
                out += ',';
            first = false;
            newline(out, depth + 1);
            emit(out, item, depth + 1);
        }
        newline(out, depth);
        out += ']';
        break;
    }
    case Json::value_t::string: quoted(out, v.get<std::string>()); break;
    case Json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; break;
    case Json::value_t::number_integer: out += std::to_string(v.get<int64_t>()); break;
    case Json::value_t::number_unsigned: out += std::to_string(v.get<uint64_t>()); break;
    case Json::value_t::number_float: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
        out += buf;
        break;
    }
    default: out += "null"; break;
    }
}

std::string qjson_pretty(const Json& value)
{
    std::string out;
    emit(out, value, 0);
    return out;
}

} // namespace kiln::tools
