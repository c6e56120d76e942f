// FdChardev: a chardev over an input fd and an output fd (stdio, file,
// pty). Input is read non-blocking on the event loop; output is written
// under a mutex so serial output and mux messages do not interleave.
#pragma once

#include <mutex>

#include "chardev/chardev.h"

namespace kiln::chardev {

class FdChardev : public Chardev {
public:
    // Takes ownership of the fds it is told to close.
    FdChardev(int in_fd, int out_fd, bool close_fds);
    ~FdChardev() override;

    void write(std::span<const uint8_t> bytes) override;
    Result<void> attach(EventLoop& loop, InputHandler on_input) override;
    void detach() override;

protected:
    int m_in_fd;
    int m_out_fd;
    bool m_close_fds;
    EventLoop* m_loop = nullptr;
    InputHandler m_on_input;
    std::mutex m_write_lock;
};

// Writes all of `bytes` to fd, retrying on EINTR; gives up on EAGAIN or
// errors (returns false).
bool write_all(int fd, std::span<const uint8_t> bytes);

} // namespace kiln::chardev
