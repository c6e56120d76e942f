#include "chardev/chardev_spec.h"

#include "util/options.h"

namespace kiln::chardev {

namespace {

Error bad(const std::string& text, const std::string& why)
{
    return Error::invalid("'" + text + "' " + why);
}

Result<ChardevSpec> parse_unix(const std::string& text, const std::string& rest)
{
    auto opts = TRY(OptionList::parse(rest, "path"));
    ChardevSpec spec;
    spec.kind = ChardevKind::UnixSocket;
    for (auto& [key, value] : opts.entries()) {
        if (key == "path") {
            spec.path = value;
        } else if (key == "server") {
            spec.server = TRY(parse_bool_option(key, value));
        } else if (key == "wait") {
            spec.wait = TRY(parse_bool_option(key, value));
        } else if (key == "nowait") {
            spec.wait = false;
        } else if (key == "nodelay" || key == "reconnect" || key == "telnet") {
            return bad(text, "uses option '" + key + "', which Kiln does not support");
        } else {
            return bad(text, "has an unknown option '" + key + "'");
        }
    }
    if (spec.path.empty())
        return bad(text, "needs a socket path (unix:PATH)");
    if (!spec.server)
        spec.wait = false;
    return spec;
}

} // namespace

Result<ChardevSpec> parse_chardev_spec(const std::string& text)
{
    ChardevSpec spec;
    std::string t = text;
    if (t.rfind("mon:", 0) == 0) {
        spec.mux_monitor = true;
        t = t.substr(4);
        if (t != "stdio")
            return bad(text, "is not supported: the monitor can only share stdio (mon:stdio)");
    }
    if (t == "none") {
        spec.kind = ChardevKind::None;
    } else if (t == "null") {
        spec.kind = ChardevKind::Null;
    } else if (t == "stdio") {
        spec.kind = ChardevKind::Stdio;
    } else if (t == "pty") {
        spec.kind = ChardevKind::Pty;
    } else if (t.rfind("file:", 0) == 0) {
        spec.kind = ChardevKind::File;
        spec.path = t.substr(5);
        if (spec.path.empty())
            return bad(text, "needs a file name (file:PATH)");
    } else if (t.rfind("unix:", 0) == 0) {
        auto unix_spec = TRY(parse_unix(text, t.substr(5)));
        unix_spec.mux_monitor = spec.mux_monitor;
        return unix_spec;
    } else {
        return bad(text, "is not a valid char driver (expected stdio, mon:stdio, file:PATH, unix:PATH, pty, null or none)");
    }
    return spec;
}

} // namespace kiln::chardev
