#include "monitor/connection.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <sys/epoll.h>
#include <sys/socket.h>

namespace kiln::monitor {

static Result<void> set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return Error::from_errno(errno, "fcntl O_NONBLOCK");
    return {};
}

Result<std::unique_ptr<Connection>> Connection::create(EventLoop& loop, int in_fd, int out_fd, Ownership ownership)
{
    TRY(set_nonblocking(in_fd));
    if (out_fd != in_fd)
        TRY(set_nonblocking(out_fd));
    std::unique_ptr<Connection> conn(new Connection(loop, in_fd, out_fd, ownership));
    if (in_fd == out_fd) {
        TRY(loop.add_fd(in_fd, FdEvents::Read, [c = conn.get()](uint32_t events) {
            if (events & EPOLLOUT)
                c->on_out_event(events);
            if (events & ~uint32_t(EPOLLOUT))
                c->on_in_event(events);
        }));
        conn->m_in_registered = true;
    } else {
        auto added = loop.add_fd(in_fd, FdEvents::Read, [c = conn.get()](uint32_t events) { c->on_in_event(events); });
        if (added) {
            conn->m_in_registered = true;
        } else if (added.error().errno_value() == EPERM) {
            // A regular file or /dev/null as input cannot be polled; such
            // reads never block, so drain it from bottom halves instead.
            conn->m_in_is_file = true;
            conn->schedule_file_read();
        } else {
            return std::move(added).error();
        }
    }
    return conn;
}

Connection::Connection(EventLoop& loop, int in_fd, int out_fd, Ownership ownership)
    : m_loop(loop)
    , m_in_fd(in_fd)
    , m_out_fd(out_fd)
    , m_ownership(ownership)
{
}

Connection::~Connection()
{
    *m_alive = false;
    shut(false);
}

void Connection::set_handlers(std::function<void(std::string_view)> on_data, std::function<void()> on_closed)
{
    m_on_data = std::move(on_data);
    m_on_closed = std::move(on_closed);
}

void Connection::on_in_event(uint32_t events)
{
    if (m_closed)
        return;
    if (m_closing || m_input_paused) {
        // Not reading any more; a hang-up still ends the connection.
        if (events & (EPOLLHUP | EPOLLERR))
            shut(true);
        return;
    }
    char buf[k_read_chunk_bytes];
    ssize_t n = ::read(m_in_fd, buf, sizeof buf);
    if (n > 0) {
        auto alive = m_alive;
        if (m_on_data)
            m_on_data(std::string_view(buf, size_t(n)));
        if (*alive)
            update_interest();
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    shut(true); // EOF or a hard error
}

void Connection::schedule_file_read()
{
    m_loop.schedule([this, alive = std::weak_ptr<bool>(m_alive)] {
        auto locked = alive.lock();
        if (!locked || !*locked || m_closed)
            return;
        on_in_event(EPOLLIN);
        if (*locked && !m_closed)
            schedule_file_read();
    });
}

void Connection::on_out_event(uint32_t events)
{
    if (m_closed)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        shut(true);
        return;
    }
    flush();
}

void Connection::write(std::string_view bytes)
{
    if (m_closed)
        return;
    if (queued_output_bytes() + bytes.size() > k_max_output_bytes) {
        shut(true);
        return;
    }
    m_output.append(bytes);
    flush();
}

void Connection::flush()
{
    while (!m_closed && m_output_offset < m_output.size()) {
        const char* data = m_output.data() + m_output_offset;
        size_t length = m_output.size() - m_output_offset;
        // send() with MSG_NOSIGNAL so a vanished socket peer is an EPIPE
        // error, not a process-killing SIGPIPE; pipes need main() to ignore
        // SIGPIPE, as QEMU does.
        ssize_t n = m_out_is_socket ? ::send(m_out_fd, data, length, MSG_NOSIGNAL) : ::write(m_out_fd, data, length);
        if (n < 0 && errno == ENOTSOCK) {
            m_out_is_socket = false;
            continue;
        }
        if (n > 0) {
            m_output_offset += size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        shut(true); // EPIPE and friends: the peer is gone
        return;
    }
    if (m_closed)
        return;
    if (m_output_offset == m_output.size()) {
        m_output.clear();
        m_output_offset = 0;
        if (m_closing) {
            shut(true);
            return;
        }
    } else if (m_output_offset > (1 << 16)) {
        m_output.erase(0, m_output_offset);
        m_output_offset = 0;
    }
    update_interest();
}

void Connection::update_interest()
{
    if (m_closed)
        return;
    bool want_out = queued_output_bytes() > 0;
    bool want_in = !m_closing && !m_input_paused && queued_output_bytes() < k_pause_input_bytes;
    if (m_in_fd == m_out_fd) {
        uint32_t mask = (want_in ? uint32_t(FdEvents::Read) : 0) | (want_out ? uint32_t(FdEvents::Write) : 0);
        // Keep the fd registered for errors even with nothing to wait for
        // (epoll reports hang-ups and errors without being asked); while
        // paused, not even for reads, or a half-closed peer would spin.
        (void)m_loop.modify_fd(m_in_fd, mask || m_input_paused ? FdEvents(mask) : FdEvents::Read);
        return;
    }
    if (want_out && !m_out_registered) {
        if (m_loop.add_fd(m_out_fd, FdEvents::Write, [this](uint32_t events) { on_out_event(events); }))
            m_out_registered = true;
    } else if (!want_out && m_out_registered) {
        m_loop.remove_fd(m_out_fd);
        m_out_registered = false;
    }
    if (m_in_is_file)
        return;
    if (want_in && !m_in_registered) {
        if (m_loop.add_fd(m_in_fd, FdEvents::Read, [this](uint32_t events) { on_in_event(events); }))
            m_in_registered = true;
    } else if (!want_in && m_in_registered) {
        m_loop.remove_fd(m_in_fd);
        m_in_registered = false;
    }
}

void Connection::pause_input(bool paused)
{
    if (m_closed || m_input_paused == paused)
        return;
    m_input_paused = paused;
    update_interest(); // a file input's read chain just skips while paused
}

void Connection::close_after_flush()
{
    if (m_closed)
        return;
    m_closing = true;
    flush();
}

void Connection::shut(bool notify)
{
    if (m_closed)
        return;
    m_closed = true;
    if (m_in_registered)
        m_loop.remove_fd(m_in_fd);
    if (m_out_registered && m_out_fd != m_in_fd)
        m_loop.remove_fd(m_out_fd);
    m_in_registered = m_out_registered = false;
    if (m_ownership == Ownership::Owned) {
        ::close(m_in_fd);
        if (m_out_fd != m_in_fd)
            ::close(m_out_fd);
    }
    m_output.clear();
    m_output_offset = 0;
    if (notify && m_on_closed)
        m_on_closed();
}

} // namespace kiln::monitor
