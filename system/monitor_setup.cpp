#include "system/monitor_setup.h"

#include <unistd.h>

#include "chardev/terminal.h"
#include "monitor/monitor.h"
#include "system/vm.h"
#include "util/options.h"

namespace kiln::system {

namespace {

Error opt_error(const std::string& opt, const std::string& value, const std::string& what)
{
    return Error::invalid("-" + opt + " " + value + ": " + what);
}

// The options after "unix:PATH" / "tcp:HOST:PORT": server, wait, telnet.
Result<void> parse_socket_flags(const std::string& opt, const std::string& value, const std::string& flags)
{
    if (flags.empty())
        return opt_error(opt, value, "Kiln's monitor sockets must listen: add ',server=on,wait=off'");
    auto list = OptionList::parse(flags);
    if (!list.ok())
        return opt_error(opt, value, list.error().message());
    bool server = false;
    for (auto& [k, v] : list.value().entries()) {
        if (k == "server") {
            server = TRY(parse_bool_option(k, v));
        } else if (k == "wait" || k == "nowait" || k == "nodelay" || k == "ipv4" || k == "ipv6") {
            TRY(parse_bool_option(k, v));
        } else {
            return opt_error(opt, value, "Invalid parameter '" + k + "'");
        }
    }
    if (!server)
        return opt_error(opt, value, "Kiln's monitor sockets must listen: add ',server=on,wait=off'");
    return {};
}

Result<void> parse_host_port(
    const std::string& opt, const std::string& value, const std::string& address, MonitorEndpoint& ep)
{
    auto colon = address.rfind(':');
    if (colon == std::string::npos || colon + 1 == address.size())
        return opt_error(opt, value, "expected HOST:PORT");
    ep.host = address.substr(0, colon);
    if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']')
        ep.host = ep.host.substr(1, ep.host.size() - 2);
    if (ep.host.empty())
        ep.host = "0.0.0.0";
    char* end = nullptr;
    unsigned long port = strtoul(address.c_str() + colon + 1, &end, 10);
    if (*end || port > 65535)
        return opt_error(opt, value, "invalid port '" + address.substr(colon + 1) + "'");
    ep.port = uint16_t(port);
    return {};
}

const ChardevDef* find_chardev(const MonitorConfig& cfg, const std::string& id)
{
    for (const auto& c : cfg.chardevs)
        if (c.id == id)
            return &c;
    return nullptr;
}

// A monitor on a -chardev: the chardev's socket or stdio becomes the
// endpoint (the monitor listens itself; a mux=on stdio is the serial mux).
Result<MonitorEndpoint> endpoint_from_chardev(
    const MonitorConfig& cfg, const std::string& opt, const std::string& value, const std::string& id)
{
    const ChardevDef* c = find_chardev(cfg, id);
    if (!c)
        return opt_error(opt, value, "chardev \"" + id + "\" not found");
    MonitorEndpoint ep;
    ep.label = id;
    ep.origin = "-" + opt + " " + value;
    if (c->mux) {
        ep.kind = MonitorEndpoint::Kind::SerialMux;
        return ep;
    }
    switch (c->spec.kind) {
    case chardev::ChardevKind::Stdio:
        ep.kind = MonitorEndpoint::Kind::Stdio;
        return ep;
    case chardev::ChardevKind::Pty:
        ep.kind = MonitorEndpoint::Kind::Pty;
        return ep;
    case chardev::ChardevKind::UnixSocket:
        if (!c->spec.server)
            return opt_error(opt, value, "chardev '" + id + "' must be a listening socket (server=on)");
        ep.kind = MonitorEndpoint::Kind::Unix;
        ep.path = c->spec.path;
        return ep;
    default:
        break;
    }
    if (c->backend == "socket" && !c->spec.path.empty()) {
        // TCP: kept in path as HOST:PORT by parse_chardev_def.
        ep.kind = MonitorEndpoint::Kind::Tcp;
        TRY(parse_host_port(opt, value, c->spec.path, ep));
        return ep;
    }
    return opt_error(opt, value, "chardev '" + id + "' (" + c->backend + ") cannot carry a monitor");
}

Result<MonitorEndpoint> parse_monitor_value(
    const MonitorConfig& cfg, const std::string& opt, const std::string& value, MonitorMode mode)
{
    MonitorEndpoint ep;
    ep.mode = mode;
    ep.origin = "-" + opt + " " + value;
    auto comma = value.find(',');
    std::string head = value.substr(0, comma);
    std::string flags = comma == std::string::npos ? "" : value.substr(comma + 1);
    if (head == "stdio" || head == "pty") {
        if (!flags.empty())
            return opt_error(opt, value, "unexpected options '" + flags + "'");
        ep.kind = head == "stdio" ? MonitorEndpoint::Kind::Stdio : MonitorEndpoint::Kind::Pty;
    } else if (head.rfind("unix:", 0) == 0) {
        TRY(parse_socket_flags(opt, value, flags));
        ep.kind = MonitorEndpoint::Kind::Unix;
        ep.path = head.substr(5);
        if (ep.path.empty())
            return opt_error(opt, value, "needs a socket path (unix:PATH)");
    } else if (head.rfind("tcp:", 0) == 0 || head.rfind("telnet:", 0) == 0) {
        TRY(parse_socket_flags(opt, value, flags));
        ep.kind = MonitorEndpoint::Kind::Tcp;
        ep.telnet = head[1] == 'e';
        TRY(parse_host_port(opt, value, head.substr(head.find(':') + 1), ep));
    } else if (head.rfind("chardev:", 0) == 0) {
        auto from = TRY(endpoint_from_chardev(cfg, opt, value, head.substr(8)));
        from.mode = mode;
        return from;
    } else {
        return opt_error(opt, value,
            "'" + head
                + "' is not a valid char driver (expected stdio, pty, none, unix:PATH,server=on, "
                  "tcp:HOST:PORT,server=on or chardev:ID)");
    }
    return ep;
}

Result<ChardevDef> parse_chardev_def(const std::string& value)
{
    auto list = OptionList::parse(value, "backend");
    if (!list.ok())
        return opt_error("chardev", value, list.error().message());
    ChardevDef def;
    def.origin = "-chardev " + value;
    def.backend = list.value().get("backend").value_or("");
    def.id = list.value().get("id").value_or("");
    if (def.id.empty())
        return opt_error("chardev", value, "Parameter 'id' is missing");
    std::string path, host, port;
    bool server = false, wait = true;
    for (auto& [k, v] : list.value().entries()) {
        if (k == "backend" || k == "id") {
            continue;
        } else if (k == "mux") {
            def.mux = TRY(parse_bool_option(k, v));
        } else if (k == "path") {
            path = v;
        } else if (k == "host") {
            host = v;
        } else if (k == "port") {
            port = v;
        } else if (k == "server") {
            server = TRY(parse_bool_option(k, v));
        } else if (k == "wait") {
            wait = TRY(parse_bool_option(k, v));
        } else if (k == "nowait") {
            wait = false;
        } else if (k == "signal" || k == "logfile" || k == "telnet" || k == "nodelay" || k == "ipv4" || k == "ipv6") {
            continue; // accepted, no effect here
        } else {
            return opt_error("chardev", value, "Invalid parameter '" + k + "'");
        }
    }
    chardev::ChardevSpec& spec = def.spec;
    if (def.backend == "stdio") {
        spec.kind = chardev::ChardevKind::Stdio;
    } else if (def.backend == "pty") {
        spec.kind = chardev::ChardevKind::Pty;
    } else if (def.backend == "null") {
        spec.kind = chardev::ChardevKind::Null;
    } else if (def.backend == "file") {
        if (path.empty())
            return opt_error("chardev", value, "Parameter 'path' is missing");
        spec.kind = chardev::ChardevKind::File;
        spec.path = path;
    } else if (def.backend == "socket") {
        if (!path.empty()) {
            spec.kind = chardev::ChardevKind::UnixSocket;
            spec.path = path;
            spec.server = server;
            spec.wait = server && wait;
        } else if (!port.empty()) {
            // TCP exists only for monitors; kept as HOST:PORT.
            spec.kind = chardev::ChardevKind::None;
            spec.path = (host.empty() ? "0.0.0.0" : host) + ":" + port;
            spec.server = server;
        } else {
            return opt_error("chardev", value, "chardev: socket: no host given");
        }
    } else {
        return opt_error("chardev", value,
            "'" + def.backend + "' is not a valid char driver name (expected socket, stdio, pty, null or file)");
    }
    return def;
}

} // namespace

Result<MonitorConfig> parse_monitor_options(const ParsedArgs& args)
{
    MonitorConfig cfg;
    for (const std::string& c : args.all("chardev")) {
        auto def = TRY(parse_chardev_def(c));
        if (find_chardev(cfg, def.id))
            return opt_error("chardev", c, "attempt to add duplicate property 'id' (\"" + def.id + "\")");
        cfg.chardevs.push_back(std::move(def));
    }
    unsigned compat = 0;
    for (const ParsedOption& o : args.options) {
        if (o.name != "monitor" && o.name != "qmp" && o.name != "mon")
            continue;
        cfg.explicit_monitor = true;
        if (o.name == "mon") {
            auto list = OptionList::parse(o.value, "chardev");
            if (!list.ok())
                return opt_error("mon", o.value, list.error().message());
            MonitorMode mode = MonitorMode::Readline;
            for (auto& [k, v] : list.value().entries()) {
                if (k == "mode") {
                    if (v == "control")
                        mode = MonitorMode::Control;
                    else if (v != "readline")
                        return opt_error(
                            "mon", o.value, "unknown monitor mode '" + v + "' (expected readline or control)");
                } else if (k != "chardev" && k != "pretty") {
                    return opt_error("mon", o.value, "Invalid parameter '" + k + "'");
                }
            }
            auto id = list.value().get("chardev");
            if (!id)
                return opt_error("mon", o.value, "Parameter 'chardev' is missing");
            auto ep = TRY(endpoint_from_chardev(cfg, "mon", o.value, *id));
            ep.mode = mode;
            cfg.endpoints.push_back(std::move(ep));
            continue;
        }
        if (o.value == "none")
            continue;
        MonitorMode mode = o.name == "qmp" ? MonitorMode::Control : MonitorMode::Readline;
        auto ep = TRY(parse_monitor_value(cfg, o.name, o.value, mode));
        if (ep.label.empty())
            ep.label = "compat_monitor" + std::to_string(compat++);
        cfg.endpoints.push_back(std::move(ep));
    }
    return cfg;
}

Result<chardev::ChardevSpec> resolve_serial_chardev(const MonitorConfig& cfg, const std::string& value)
{
    std::string id = value.substr(8); // "chardev:"
    const ChardevDef* c = find_chardev(cfg, id);
    if (!c)
        return Error::invalid("-serial " + value + ": chardev \"" + id + "\" not found");
    if (c->backend == "socket" && c->spec.kind != chardev::ChardevKind::UnixSocket)
        return Error::invalid("-serial " + value + ": a serial port cannot use a TCP chardev yet (use a unix socket)");
    chardev::ChardevSpec spec = c->spec;
    for (const auto& ep : cfg.endpoints)
        if (ep.kind == MonitorEndpoint::Kind::SerialMux && ep.label == id)
            spec.mux_monitor = true;
    if (spec.mux_monitor && spec.kind != chardev::ChardevKind::Stdio)
        return Error::invalid("-serial " + value + ": the monitor can share only a stdio chardev with a serial port");
    return spec;
}

unsigned monitor_stdio_users(const MonitorConfig& cfg)
{
    unsigned n = 0;
    for (const auto& ep : cfg.endpoints)
        n += ep.kind == MonitorEndpoint::Kind::Stdio;
    return n;
}

namespace {

std::string chardev_filename(const chardev::ChardevSpec& s)
{
    switch (s.kind) {
    case chardev::ChardevKind::None:
        return "none";
    case chardev::ChardevKind::Null:
        return "null";
    case chardev::ChardevKind::Stdio:
        return s.mux_monitor ? "mux" : "stdio";
    case chardev::ChardevKind::File:
        return "file:" + s.path;
    case chardev::ChardevKind::UnixSocket:
        return "unix:" + s.path + (s.server ? ",server=on" : "");
    case chardev::ChardevKind::Pty:
        return "pty";
    }
    return "";
}

std::string endpoint_filename(const MonitorEndpoint& ep)
{
    switch (ep.kind) {
    case MonitorEndpoint::Kind::Stdio:
        return "stdio";
    case MonitorEndpoint::Kind::Unix:
        return "unix:" + ep.path + ",server=on";
    case MonitorEndpoint::Kind::Tcp:
        return std::string(ep.telnet ? "telnet:" : "tcp:") + ep.host + ":" + std::to_string(ep.port) + ",server=on";
    case MonitorEndpoint::Kind::Pty:
        return "pty";
    case MonitorEndpoint::Kind::SerialMux:
        return "mux";
    }
    return "";
}

monitor::MonitorProtocol protocol_of(const MonitorEndpoint& ep)
{
    return ep.mode == MonitorMode::Control ? monitor::MonitorProtocol::Qmp : monitor::MonitorProtocol::Hmp;
}

// Ctrl-A c on serial port `index`: the first switch opens an HMP client
// on the mux (banner and prompt), later ones just move the focus.
void connect_mux_monitor(Vm& vm, size_t link_index)
{
    SerialLink* link = vm.serial_links[link_index].get();
    monitor::Monitor* mon = vm.monitor.get();
    auto client = std::make_shared<std::unique_ptr<monitor::MonitorClient>>();
    link->set_monitor_input([client](std::span<const uint8_t> bytes) {
        if (*client)
            (*client)->feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    });
    link->set_on_focus([link, mon, client](bool monitor_focused) {
        if (*client)
            (*client)->focus(monitor_focused);
        else if (monitor_focused)
            *client = mon->open_client(monitor::MonitorProtocol::Hmp, [link](std::string_view out) {
                link->write_host(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size()));
            });
    });
    vm.mux_clients.push_back(client);
}

} // namespace

Result<void> setup_monitors(Vm& vm, EventLoop& loop)
{
    const MonitorConfig& cfg = vm.config.monitors;
    VmControl& control = *vm.control;
    for (size_t i = 0; i < vm.config.serials.size(); i++)
        if (vm.config.serials[i].kind != chardev::ChardevKind::None)
            control.add_chardev({ "serial" + std::to_string(i), chardev_filename(vm.config.serials[i]), true });
    vm.monitor = std::make_unique<monitor::Monitor>(loop, control);
    for (const MonitorEndpoint& ep : cfg.endpoints) {
        if (ep.kind != MonitorEndpoint::Kind::SerialMux)
            control.add_chardev({ ep.label, endpoint_filename(ep), true });
        monitor::MonitorProtocol protocol = protocol_of(ep);
        Result<void> opened;
        switch (ep.kind) {
        case MonitorEndpoint::Kind::Stdio:
            if (isatty(0))
                chardev::terminal_enter_raw();
            opened = vm.monitor->attach_fds(protocol, 0, 1);
            break;
        case MonitorEndpoint::Kind::Unix:
            opened = vm.monitor->listen_unix(protocol, ep.path);
            break;
        case MonitorEndpoint::Kind::Tcp: {
            auto port = vm.monitor->listen_tcp(
                protocol, ep.host, ep.port, ep.telnet ? monitor::TcpMode::Telnet : monitor::TcpMode::Raw);
            if (!port.ok())
                opened = std::move(port).error();
            break;
        }
        case MonitorEndpoint::Kind::Pty: {
            auto fd = chardev::open_pty_master(ep.label);
            if (!fd.ok()) {
                opened = std::move(fd).error();
                break;
            }
            vm.monitor_fds.push_back(fd.value());
            opened = vm.monitor->attach_fds(protocol, fd.value(), fd.value());
            break;
        }
        case MonitorEndpoint::Kind::SerialMux:
            break; // connected below, with the serial links
        }
        if (!opened.ok())
            return Error(opened.error().kind(), ep.origin + ": " + opened.error().message());
    }
    // Serial ports with a monitor mux (mon:stdio, -nographic's default,
    // -chardev stdio,mux=on + -mon): Ctrl-A c reaches an HMP client.
    size_t link = 0;
    for (const auto& spec : vm.config.serials) {
        if (spec.kind == chardev::ChardevKind::None)
            continue;
        if (spec.mux_monitor && link < vm.serial_links.size())
            connect_mux_monitor(vm, link);
        link++;
    }
    return {};
}

} // namespace kiln::system
