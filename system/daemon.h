// -daemonize and -pidfile. Daemonizing is split in two: start_daemon()
// forks before the machine is built (the parent waits and exits with the
// child's start-up status), finish_daemon() tells the parent start-up
// succeeded and detaches stdio.
#pragma once

#include <string>

#include "util/result.h"

namespace kiln::system {

// Returns in the child; the parent never returns (it exits 0 or 1).
Result<void> start_daemon();
void finish_daemon();
// Reports a start-up failure to the waiting parent (no-op otherwise).
void fail_daemon();

class PidFile {
public:
    static Result<PidFile> create(const std::string& path);
    PidFile() = default;
    PidFile(PidFile&& o) noexcept : m_path(std::move(o.m_path)) { o.m_path.clear(); }
    PidFile& operator=(PidFile&& o) noexcept
    {
        std::swap(m_path, o.m_path);
        return *this;
    }
    ~PidFile();

private:
    std::string m_path;
};

} // namespace kiln::system
