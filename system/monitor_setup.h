// The monitor options: -monitor, -qmp, -mon and -chardev, checked in the
// config phase (parse_monitor_options) and turned into a running
// monitor::Monitor once the VM exists (setup_monitors). QEMU's defaults
// apply: -nographic without any monitor option puts HMP on the serial
// console's Ctrl-A mux (mon:stdio).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chardev/chardev_spec.h"
#include "system/cli_parse.h"
#include "util/result.h"

namespace kiln {
class EventLoop;
}

namespace kiln::system {

struct Vm;

enum class MonitorMode { Readline, Control }; // HMP, QMP

struct MonitorEndpoint {
    enum class Kind { Stdio, Unix, Tcp, Pty, SerialMux };
    MonitorMode mode = MonitorMode::Readline;
    Kind kind = Kind::Stdio;
    std::string path; // Unix
    std::string host; // Tcp
    uint16_t port = 0; // Tcp
    bool telnet = false; // Tcp: QEMU's telnet: spelling (plain TCP here)
    std::string label; // "compat_monitor0" or the -chardev id
    std::string origin; // the option as typed, for messages
};

// A -chardev definition that -serial chardev:ID or -mon chardev=ID names.
struct ChardevDef {
    std::string id;
    std::string backend; // "socket", "stdio", "pty", "null", "file"
    chardev::ChardevSpec spec; // for -serial chardev:ID
    bool mux = false;
    std::string origin;
};

struct MonitorConfig {
    std::vector<MonitorEndpoint> endpoints;
    std::vector<ChardevDef> chardevs;
    // Any of -monitor, -qmp, -mon given (QEMU's default_monitor = 0).
    bool explicit_monitor = false;
};

Result<MonitorConfig> parse_monitor_options(const ParsedArgs& args);
// -serial chardev:ID -> the chardev's spec; mux_monitor is set when the
// chardev is mux=on and a -mon uses it.
Result<chardev::ChardevSpec> resolve_serial_chardev(const MonitorConfig& cfg, const std::string& value);
// How many of the endpoints use stdio (for the one-user-of-stdio check).
unsigned monitor_stdio_users(const MonitorConfig& cfg);

// After realize: creates vm.monitor, opens every endpoint, and connects
// the serial muxes' Ctrl-A c to an HMP client.
Result<void> setup_monitors(Vm& vm, EventLoop& loop);

} // namespace kiln::system
