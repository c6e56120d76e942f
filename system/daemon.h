// -daemonize, -pidfile and the signal exit line. Daemonizing is split in two: start_daemon()
// forks before the machine is built (the parent waits and exits with the
// child's start-up status), finish_daemon() tells the parent start-up
// succeeded and detaches stdio.
#pragma once

#include <sys/types.h>

#include <string>

#include "util/result.h"

namespace kiln::system {

// Returns in the child; the parent never returns (it exits 0 or 1).
Result<void> start_daemon();
void finish_daemon();
// Reports a start-up failure to the waiting parent (no-op otherwise).
void fail_daemon();

// QEMU's line for a terminating signal:
// "terminating on signal 15 from pid 1234 (bash)".
std::string signal_exit_message(int signo, pid_t sender);

// Written with the pid and locked as QEMU does; removed when destroyed.
class PidFile {
public:
    static Result<PidFile> create(const std::string& path);
    PidFile() = default;
    PidFile(PidFile&& o) noexcept : m_path(std::move(o.m_path)), m_fd(o.m_fd)
    {
        o.m_path.clear();
        o.m_fd = -1;
    }
    PidFile& operator=(PidFile&& o) noexcept
    {
        std::swap(m_path, o.m_path);
        std::swap(m_fd, o.m_fd);
        return *this;
    }
    ~PidFile();

private:
    std::string m_path;
    int m_fd = -1; // holds the lock
};

} // namespace kiln::system
