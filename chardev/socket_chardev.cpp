#include "chardev/socket_chardev.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "chardev/fd_chardev.h"
#include "util/log.h"

namespace kiln::chardev {

namespace {
Result<sockaddr_un> make_addr(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Error::invalid("UNIX socket path '" + path + "' is too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}
} // namespace

Result<std::unique_ptr<SocketChardev>> SocketChardev::open(const ChardevSpec& spec, const std::string& label)
{
    std::unique_ptr<SocketChardev> c(new SocketChardev());
    c->m_path = spec.path;
    c->m_server = spec.server;
    sockaddr_un addr = TRY(make_addr(spec.path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return Error::from_errno(errno, "Failed to create socket");
    if (!spec.server) {
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
            int err = errno;
            close(fd);
            return Error::from_errno(err, "Failed to connect to '" + spec.path + "'");
        }
        c->m_client_fd = fd;
        return c;
    }
    unlink(spec.path.c_str()); // a stale socket from an earlier run
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, 1) < 0) {
        int err = errno;
        close(fd);
        return Error::from_errno(err, "Failed to bind socket to " + spec.path);
    }
    c->m_listen_fd = fd;
    if (spec.wait) {
        fprintf(stderr, "%s: waiting for connection on: disconnected:unix:%s,server=on\n",
                Log::program_name().c_str(), spec.path.c_str());
        int client;
        do
            client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        while (client < 0 && errno == EINTR);
        if (client < 0)
            return Error::from_errno(errno, "Failed to accept a connection on '" + spec.path + "'");
        c->m_client_fd = client;
    }
    return c;
}

SocketChardev::~SocketChardev()
{
    detach();
    if (m_client_fd >= 0)
        close(m_client_fd);
    if (m_listen_fd >= 0) {
        close(m_listen_fd);
        unlink(m_path.c_str());
    }
}

bool SocketChardev::connected()
{
    std::lock_guard lk(m_lock);
    return m_client_fd >= 0;
}

void SocketChardev::write(std::span<const uint8_t> bytes)
{
    std::lock_guard lk(m_lock);
    if (m_client_fd < 0)
        return;
    // MSG_NOSIGNAL: a client that went away must not kill kiln (SIGPIPE).
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = send(m_client_fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        done += size_t(n);
    }
}

void SocketChardev::drop_client()
{
    int fd;
    {
        std::lock_guard lk(m_lock);
        fd = m_client_fd;
        m_client_fd = -1;
    }
    if (fd >= 0) {
        if (m_loop)
            m_loop->remove_fd(fd);
        close(fd);
    }
}

void SocketChardev::watch_client()
{
    int fd = m_client_fd;
    (void)m_loop->add_fd(fd, FdEvents::Read, [this, fd](uint32_t) {
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            if (m_on_input)
                m_on_input(std::span<const uint8_t>(buf, size_t(n)));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            drop_client();
        }
    });
}

void SocketChardev::accept_client()
{
    int fd = accept4(m_listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    {
        std::lock_guard lk(m_lock);
        if (m_client_fd >= 0) { // one client at a time
            close(fd);
            return;
        }
        m_client_fd = fd;
    }
    watch_client();
}

Result<void> SocketChardev::attach(EventLoop& loop, InputHandler on_input)
{
    m_loop = &loop;
    m_on_input = std::move(on_input);
    if (m_client_fd >= 0)
        watch_client();
    if (m_listen_fd >= 0)
        TRY(loop.add_fd(m_listen_fd, FdEvents::Read, [this](uint32_t) { accept_client(); }));
    return {};
}

void SocketChardev::detach()
{
    if (!m_loop)
        return;
    if (m_listen_fd >= 0)
        m_loop->remove_fd(m_listen_fd);
    if (m_client_fd >= 0)
        m_loop->remove_fd(m_client_fd);
    m_loop = nullptr;
}

} // namespace kiln::chardev
