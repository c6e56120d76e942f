// A character device as -serial spells it: stdio, mon:stdio, file:PATH,
// unix:PATH[,server[=on|off]][,nowait|,wait=off], pty, null, none.
#pragma once

#include <string>

#include "util/result.h"

namespace kiln::chardev {

enum class ChardevKind { None, Null, Stdio, File, UnixSocket, Pty };

struct ChardevSpec {
    ChardevKind kind = ChardevKind::None;
    std::string path;         // file: and unix:
    bool server = false;      // unix: listen instead of connect
    bool wait = true;         // unix server: block until a client connects
    bool mux_monitor = false; // mon: prefix (Ctrl-A mux with the monitor)

    bool uses_stdio() const { return kind == ChardevKind::Stdio; }
};

// Error text names what was expected, e.g. "'foo' is not a valid char
// driver (expected stdio, mon:stdio, file:PATH, unix:PATH, pty, null or none)".
Result<ChardevSpec> parse_chardev_spec(const std::string& text);

} // namespace kiln::chardev
