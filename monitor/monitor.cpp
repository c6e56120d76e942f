#include "monitor/monitor.h"

#include <unistd.h>

#include "monitor/connection.h"
#include "monitor/hmp_session.h"
#include "monitor/listener.h"
#include "monitor/qmp_session.h"
#include "monitor/telnet.h"

namespace kiln::monitor {

namespace {

class HmpClient : public MonitorClient {
public:
    HmpClient(const CommandTable& table, MachineControl& machine, std::function<void(std::string_view)> send)
        : m_session(table, machine, std::move(send))
    {
        m_session.start();
    }
    void feed(std::string_view bytes) override { m_session.feed(bytes); }
    void focus(bool focused) override { m_session.focus(focused); }

private:
    HmpSession m_session;
};

} // namespace

class QmpClient : public MonitorClient {
public:
    QmpClient(Monitor& monitor, std::function<void(std::string_view)> send)
        : m_monitor(monitor)
        , m_session(monitor.m_table, monitor.m_machine, std::move(send), monitor.m_qmp_max_message_bytes)
    {
        m_monitor.m_qmp_sessions.push_back(&m_session);
        m_session.start();
    }
    ~QmpClient() override { m_monitor.m_qmp_sessions.remove(&m_session); }
    void feed(std::string_view bytes) override { m_session.feed(bytes); }

private:
    Monitor& m_monitor;
    QmpSession m_session;
};

// Runs one client's input through at most one command at a time across
// the whole monitor: bytes that arrive while a command is running (the
// loop runs nested under block operations) wait in a backlog.
class Monitor::Serialized : public MonitorClient {
public:
    Serialized(Monitor& monitor, std::unique_ptr<MonitorClient> inner)
        : m_monitor(monitor)
        , m_inner(std::move(inner))
    {
    }
    ~Serialized() override { m_monitor.m_held.remove(this); }
    void focus(bool focused) override { m_inner->focus(focused); }
    void feed(std::string_view bytes) override
    {
        if (m_monitor.m_dispatching) {
            if (m_backlog.empty())
                m_monitor.m_held.push_back(this);
            m_backlog.append(bytes);
            return;
        }
        m_monitor.m_dispatching = true;
        m_monitor.pause_inputs(true);
        m_inner->feed(bytes);
        m_monitor.pause_inputs(false);
        m_monitor.m_dispatching = false;
        while (!m_monitor.m_held.empty()) {
            Serialized* next = m_monitor.m_held.front();
            m_monitor.m_held.pop_front();
            std::string backlog = std::move(next->m_backlog);
            next->m_backlog.clear();
            next->feed(backlog);
        }
        if (!m_monitor.m_dead.empty()) {
            // Not now: `this` may be one of them.
            Monitor& monitor = m_monitor;
            monitor.m_loop.schedule([&monitor, alive = std::weak_ptr<bool>(monitor.m_alive)] {
                auto locked = alive.lock();
                if (locked && *locked)
                    monitor.reap_dead();
            });
        }
    }

private:
    Monitor& m_monitor;
    std::unique_ptr<MonitorClient> m_inner;
    std::string m_backlog;
};

struct Monitor::SocketClient {
    std::unique_ptr<Connection> connection;
    std::unique_ptr<MonitorClient> client;
    std::unique_ptr<TelnetFilter> telnet; // telnet: connections only
};

Monitor::Monitor(EventLoop& loop, MachineControl& machine)
    : m_loop(loop)
    , m_machine(machine)
    , m_table(build_command_table())
    , m_qmp_max_message_bytes(JsonStream::k_default_max_value_bytes)
{
    m_machine.set_event_sink([this](const MachineEvent& event) { on_event(event); });
}

Monitor::~Monitor()
{
    *m_alive = false;
    m_machine.set_event_sink({});
    m_connections.clear();
    m_listeners.clear();
}

void Monitor::pause_inputs(bool paused)
{
    for (auto& c : m_connections)
        c->connection->pause_input(paused);
}

void Monitor::reap_dead()
{
    if (m_dispatching)
        return;
    auto dead = std::move(m_dead);
    m_dead.clear();
    for (auto it : dead)
        m_connections.erase(it);
}

void Monitor::on_event(const MachineEvent& event)
{
    std::string line = to_qmp_text(qmp_event(event)) + "\r\n";
    // Copy: sending can drop a client whose output is backed up.
    auto sessions = m_qmp_sessions;
    for (QmpSession* session : sessions)
        session->send_event(line);
}

std::unique_ptr<MonitorClient> Monitor::open_client(
    MonitorProtocol protocol, std::function<void(std::string_view)> send)
{
    std::unique_ptr<MonitorClient> client;
    if (protocol == MonitorProtocol::Qmp)
        client = std::make_unique<QmpClient>(*this, std::move(send));
    else
        client = std::make_unique<HmpClient>(m_table, m_machine, std::move(send));
    return std::make_unique<Serialized>(*this, std::move(client));
}

void Monitor::adopt(MonitorProtocol protocol, std::unique_ptr<Connection> connection, TcpMode mode)
{
    auto entry = std::make_unique<SocketClient>();
    SocketClient* raw = entry.get();
    raw->connection = std::move(connection);
    if (mode == TcpMode::Telnet) {
        raw->telnet = std::make_unique<TelnetFilter>();
        raw->connection->write(telnet_greeting());
    }
    Connection* conn = raw->connection.get();
    m_connections.push_back(std::move(entry));
    auto it = std::prev(m_connections.end());
    conn->set_handlers(
        [raw](std::string_view bytes) {
            if (!raw->client)
                return;
            if (raw->telnet) {
                std::string data = raw->telnet->filter(bytes);
                if (!data.empty())
                    raw->client->feed(data);
                return;
            }
            raw->client->feed(bytes);
        },
        [this, it, alive = std::weak_ptr<bool>(m_alive)] {
            // Destroy from a bottom half: we are inside the connection's
            // own callback here.
            m_loop.schedule([this, it, alive] {
                auto locked = alive.lock();
                if (!locked || !*locked)
                    return;
                // A command running the loop nested may be inside this
                // client's feed(); it is destroyed once that returns.
                m_dead.push_back(it);
                if (!m_dispatching)
                    reap_dead();
            });
        });
    raw->client = open_client(protocol, [conn](std::string_view bytes) { conn->write(bytes); });
}

Result<void> Monitor::listen_unix(MonitorProtocol protocol, const std::string& path)
{
    auto listener = TRY(Listener::listen_unix(m_loop, path, [this, protocol](int fd) {
        auto conn = Connection::create(m_loop, fd, fd, Connection::Ownership::Owned);
        if (conn)
            adopt(protocol, std::move(conn).value());
        else
            ::close(fd);
    }));
    m_listeners.push_back(std::move(listener));
    return {};
}

Result<uint16_t> Monitor::listen_tcp(MonitorProtocol protocol, const std::string& host, uint16_t port, TcpMode mode)
{
    auto listener = TRY(Listener::listen_tcp(m_loop, host, port, [this, protocol, mode](int fd) {
        auto conn = Connection::create(m_loop, fd, fd, Connection::Ownership::Owned);
        if (conn)
            adopt(protocol, std::move(conn).value(), mode);
        else
            ::close(fd);
    }));
    uint16_t bound = listener->port();
    m_listeners.push_back(std::move(listener));
    return bound;
}

Result<void> Monitor::attach_fds(MonitorProtocol protocol, int in_fd, int out_fd)
{
    auto conn = TRY(Connection::create(m_loop, in_fd, out_fd, Connection::Ownership::Borrowed));
    adopt(protocol, std::move(conn));
    return {};
}

Result<void> Monitor::add_from_option(MonitorProtocol protocol, std::string_view spec)
{
    std::string text(spec);
    const char* option = protocol == MonitorProtocol::Qmp ? "-qmp" : "-monitor";
    if (text == "none")
        return {};
    if (text == "stdio")
        return attach_fds(protocol, 0, 1);
    // Split "kind:address,opt=val,...".
    auto comma = text.find(',');
    std::string head = text.substr(0, comma);
    std::string options = comma == std::string::npos ? "" : text.substr(comma + 1);
    bool server = false;
    size_t start = 0;
    while (start < options.size()) {
        size_t end = options.find(',', start);
        std::string opt = options.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (opt == "server" || opt == "server=on")
            server = true;
        else if (opt == "server=off")
            server = false;
        else if (opt != "nowait" && opt != "wait=off" && opt != "wait=on" && opt != "wait")
            return Error::invalid(std::string(option) + ": Invalid parameter '" + opt.substr(0, opt.find('=')) + "'");
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    if (head.rfind("unix:", 0) == 0) {
        if (!server)
            return Error::not_supported(std::string(option) + " '" + text + "': only server=on sockets are supported");
        return listen_unix(protocol, head.substr(5));
    }
    if (head.rfind("tcp:", 0) == 0) {
        if (!server)
            return Error::not_supported(std::string(option) + " '" + text + "': only server=on sockets are supported");
        std::string address = head.substr(4);
        auto colon = address.rfind(':');
        if (colon == std::string::npos)
            return Error::invalid(std::string(option) + " '" + text + "': expected tcp:HOST:PORT");
        std::string host = address.substr(0, colon);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
            host = host.substr(1, host.size() - 2);
        char* end = nullptr;
        unsigned long port = std::strtoul(address.c_str() + colon + 1, &end, 10);
        if (*end != '\0' || port > 65535 || colon + 1 == address.size())
            return Error::invalid(std::string(option) + " '" + text + "': invalid port");
        auto bound = listen_tcp(protocol, host.empty() ? "0.0.0.0" : host, uint16_t(port));
        if (!bound)
            return std::move(bound).error();
        return {};
    }
    return Error::invalid(std::string(option) + " '" + text + "': chardev type not supported");
}

} // namespace kiln::monitor
