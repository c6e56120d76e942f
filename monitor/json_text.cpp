#include "monitor/json_text.h"

namespace kiln::monitor {

static void append(std::string& out, const Json& value)
{
    switch (value.type()) {
    case Json::value_t::object: {
        out += '{';
        bool first = true;
        for (auto it = value.begin(); it != value.end(); ++it) {
            if (!first)
                out += ", ";
            first = false;
            out += Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace);
            out += ": ";
            append(out, it.value());
        }
        out += '}';
        break;
    }
    case Json::value_t::array: {
        out += '[';
        bool first = true;
        for (const auto& element : value) {
            if (!first)
                out += ", ";
            first = false;
            append(out, element);
        }
        out += ']';
        break;
    }
    default:
        // Invalid UTF-8 from a guest-controlled string must not abort the
        // monitor: replace it rather than throw.
        out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
        break;
    }
}

std::string to_qmp_text(const Json& value)
{
    std::string out;
    append(out, value);
    return out;
}

} // namespace kiln::monitor
