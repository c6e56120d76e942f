// Monitor: the entry point system/ uses for -monitor and -qmp. It owns the
// command table, the listening sockets and the connected clients, and fans
// machine events out to every negotiated QMP client. See README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/command_table.h"
#include "monitor/machine_control.h"
#include "util/event_loop.h"
#include "util/result.h"

namespace kiln::monitor {

class Connection;
class Listener;
class QmpSession;

enum class MonitorProtocol { Hmp, Qmp };
// Raw TCP, or QEMU's telnet: (option negotiation, IAC filtered from input).
enum class TcpMode { Raw, Telnet };

// One HMP or QMP client over a byte stream its owner drives (a chardev mux,
// a test). The banner or greeting is sent when it is opened.
class MonitorClient {
public:
    virtual ~MonitorClient() = default;
    virtual void feed(std::string_view bytes) = 0;
    // HMP behind a Ctrl-A mux: the keyboard moved to or away from it.
    virtual void focus(bool focused) { (void)focused; }
};

class Monitor {
public:
    // Registers the monitor as the machine's event sink.
    Monitor(EventLoop& loop, MachineControl& machine);
    ~Monitor();
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    Result<void> listen_unix(MonitorProtocol protocol, const std::string& path);
    // Returns the bound port (useful with port 0).
    Result<uint16_t> listen_tcp(
        MonitorProtocol protocol, const std::string& host, uint16_t port, TcpMode mode = TcpMode::Raw);
    // A client on an fd pair the caller keeps (stdio: 0 and 1).
    Result<void> attach_fds(MonitorProtocol protocol, int in_fd, int out_fd);
    // QEMU's -monitor / -qmp argument: "stdio", "none",
    // "unix:PATH[,server=on][,wait=off]", "tcp:HOST:PORT[,server=on][,wait=off]".
    Result<void> add_from_option(MonitorProtocol protocol, std::string_view spec);

    // A client whose bytes the caller moves; it must not outlive the Monitor.
    std::unique_ptr<MonitorClient> open_client(MonitorProtocol protocol, std::function<void(std::string_view)> send);

    size_t connection_count() const { return m_connections.size(); }
    const CommandTable& table() const { return m_table; }
    // The message size a QMP client may send before it gets an error.
    void set_qmp_max_message_bytes(size_t bytes) { m_qmp_max_message_bytes = bytes; }

private:
    struct SocketClient;
    class Serialized;
    friend class QmpClient;

    void adopt(MonitorProtocol protocol, std::unique_ptr<Connection> connection, TcpMode mode = TcpMode::Raw);
    void on_event(const MachineEvent& event);

    EventLoop& m_loop;
    MachineControl& m_machine;
    CommandTable m_table;
    size_t m_qmp_max_message_bytes;
    std::vector<std::unique_ptr<Listener>> m_listeners;
    std::list<std::unique_ptr<SocketClient>> m_connections;
    std::list<QmpSession*> m_qmp_sessions; // for events
    // A command that waits for the block layer runs the event loop nested;
    // input arriving meanwhile is held back until it returns, so commands
    // never interleave (see Serialized).
    bool m_dispatching = false;
    std::list<Serialized*> m_held;
    // Connections that closed during a command: destroyed once it returns.
    std::vector<std::list<std::unique_ptr<SocketClient>>::iterator> m_dead;
    void reap_dead();
    void pause_inputs(bool paused);
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
};

} // namespace kiln::monitor
