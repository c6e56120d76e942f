#include "monitor/listener.h"

#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace kiln::monitor {

Result<std::unique_ptr<Listener>> Listener::listen_unix(EventLoop& loop, const std::string& path, OnAccept on_accept)
{
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return Error::invalid("UNIX socket path '" + path + "' is too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return Error::from_errno(errno, "Failed to create socket");
    ::unlink(path.c_str());
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        ::close(fd);
        return Error::from_errno(err, "Failed to bind socket to " + path);
    }
    std::unique_ptr<Listener> listener(new Listener(loop, fd, std::move(on_accept)));
    listener->m_path = path;
    TRY(listener->start());
    return listener;
}

Result<std::unique_ptr<Listener>> Listener::listen_tcp(
    EventLoop& loop, const std::string& host, uint16_t port, OnAccept on_accept)
{
    addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
    if (rc != 0 || !found)
        return Error::invalid("address resolution failed for " + host + ":" + service + ": " + gai_strerror(rc));
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(found);
        return Error::from_errno(errno, "Failed to create socket");
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, found->ai_addr, found->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        freeaddrinfo(found);
        ::close(fd);
        return Error::from_errno(err, "Failed to bind socket to " + host + ":" + service);
    }
    freeaddrinfo(found);
    sockaddr_storage bound {};
    socklen_t length = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    std::unique_ptr<Listener> listener(new Listener(loop, fd, std::move(on_accept)));
    listener->m_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                   : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    TRY(listener->start());
    return listener;
}

Result<void> Listener::start()
{
    return m_loop.add_fd(m_fd, FdEvents::Read, [this](uint32_t) { accept_ready(); });
}

void Listener::accept_ready()
{
    // Accept everything pending; each connection is independent.
    for (int i = 0; i < 64; ++i) {
        int fd = accept4(m_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; // EAGAIN, or a transient error (ECONNABORTED, EMFILE): retry on the next event
        m_on_accept(fd);
    }
}

Listener::~Listener()
{
    m_loop.remove_fd(m_fd);
    ::close(m_fd);
    if (!m_path.empty())
        ::unlink(m_path.c_str());
}

} // namespace kiln::monitor
