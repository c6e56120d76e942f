#include "system/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace kiln::system {

namespace {
int g_status_fd = -1; // write end of the pipe to the waiting parent
}

Result<void> start_daemon()
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return Error::from_errno(errno, "-daemonize: cannot create a pipe");
    pid_t pid = fork();
    if (pid < 0)
        return Error::from_errno(errno, "-daemonize: cannot fork");
    if (pid > 0) {
        close(fds[1]);
        char status = 1;
        ssize_t n;
        do
            n = read(fds[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && status == 0 ? 0 : 1);
    }
    close(fds[0]);
    g_status_fd = fds[1];
    setsid();
    return {};
}

void finish_daemon()
{
    if (g_status_fd < 0)
        return;
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        close(null_fd);
    }
    char ok = 0;
    (void)!write(g_status_fd, &ok, 1);
    close(g_status_fd);
    g_status_fd = -1;
}

void fail_daemon()
{
    if (g_status_fd < 0)
        return;
    char bad = 1;
    (void)!write(g_status_fd, &bad, 1);
    close(g_status_fd);
    g_status_fd = -1;
}

Result<PidFile> PidFile::create(const std::string& path)
{
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return Error::from_errno(errno, "Failed to write PID file '" + path + "'");
    std::string pid = std::to_string(getpid()) + "\n";
    bool ok = write(fd, pid.data(), pid.size()) == ssize_t(pid.size());
    close(fd);
    if (!ok)
        return Error::from_errno(EIO, "Failed to write PID file '" + path + "'");
    PidFile p;
    p.m_path = path;
    return p;
}

PidFile::~PidFile()
{
    if (!m_path.empty())
        unlink(m_path.c_str());
}

} // namespace kiln::system
