#include "chardev/fd_chardev.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace kiln::chardev {

bool write_all(int fd, std::span<const uint8_t> bytes)
{
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += size_t(n);
    }
    return true;
}

FdChardev::FdChardev(int in_fd, int out_fd, bool close_fds) : m_in_fd(in_fd), m_out_fd(out_fd), m_close_fds(close_fds) {}

FdChardev::~FdChardev()
{
    detach();
    if (m_close_fds) {
        if (m_in_fd >= 0)
            close(m_in_fd);
        if (m_out_fd >= 0 && m_out_fd != m_in_fd)
            close(m_out_fd);
    }
}

void FdChardev::write(std::span<const uint8_t> bytes)
{
    if (m_out_fd < 0)
        return;
    std::lock_guard lk(m_write_lock);
    (void)write_all(m_out_fd, bytes);
}

Result<void> FdChardev::attach(EventLoop& loop, InputHandler on_input)
{
    if (m_in_fd < 0)
        return {};
    m_loop = &loop;
    m_on_input = std::move(on_input);
    int flags = fcntl(m_in_fd, F_GETFL);
    if (flags >= 0)
        fcntl(m_in_fd, F_SETFL, flags | O_NONBLOCK);
    auto r = loop.add_fd(m_in_fd, FdEvents::Read, [this](uint32_t) {
        uint8_t buf[4096];
        ssize_t n = ::read(m_in_fd, buf, sizeof buf);
        if (n > 0) {
            if (m_on_input)
                m_on_input(std::span<const uint8_t>(buf, size_t(n)));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            // End of input (stdin closed): keep the output side working.
            detach();
        }
    });
    if (!r.ok()) {
        // Regular files cannot be polled with epoll; such input is ignored.
        m_loop = nullptr;
        if (r.error().errno_value() == EPERM)
            return {};
        return r;
    }
    return {};
}

void FdChardev::detach()
{
    if (m_loop && m_in_fd >= 0)
        m_loop->remove_fd(m_in_fd);
    m_loop = nullptr;
}

} // namespace kiln::chardev
