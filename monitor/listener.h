// Listener: a listening unix or TCP socket on the event loop that hands
// each accepted connection's fd to a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "util/event_loop.h"
#include "util/result.h"

namespace kiln::monitor {

class Listener {
public:
    using OnAccept = std::function<void(int fd)>;

    // Replaces a stale socket file at `path`; removes it again on destruction.
    static Result<std::unique_ptr<Listener>> listen_unix(EventLoop& loop, const std::string& path, OnAccept on_accept);
    // port 0 picks a free port; port() tells which.
    static Result<std::unique_ptr<Listener>> listen_tcp(
        EventLoop& loop, const std::string& host, uint16_t port, OnAccept on_accept);
    ~Listener();

    uint16_t port() const { return m_port; }
    const std::string& path() const { return m_path; }

private:
    Listener(EventLoop& loop, int fd, OnAccept on_accept)
        : m_loop(loop)
        , m_fd(fd)
        , m_on_accept(std::move(on_accept))
    {
    }
    Result<void> start();
    void accept_ready();

    EventLoop& m_loop;
    int m_fd;
    OnAccept m_on_accept;
    std::string m_path;
    uint16_t m_port = 0;
};

} // namespace kiln::monitor
