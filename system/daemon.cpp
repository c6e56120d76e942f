#include "system/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
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
    // As QEMU's os_daemonize(): a new session, then a second fork so the
    // daemon is not a session leader and can never acquire a controlling
    // terminal; the first child's exit is not a start-up status.
    setsid();
    pid = fork();
    if (pid < 0) {
        fail_daemon();
        _exit(1);
    }
    if (pid > 0)
        _exit(0);
    umask(027);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTSTP, SIG_IGN);
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
    // Relative paths on the command line were opened during start-up;
    // from here on the daemon holds no directory busy.
    if (chdir("/") < 0) {
        fail_daemon();
        _exit(1);
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

std::string signal_exit_message(int signo, pid_t sender)
{
    std::string name = "<unknown process>";
    int fd = open(("/proc/" + std::to_string(sender) + "/comm").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        if (n > 0)
            name.assign(buf, size_t(n) - (buf[n - 1] == '\n'));
    }
    return "terminating on signal " + std::to_string(signo) + " from pid " + std::to_string(sender) + " (" + name
           + ")";
}

Result<PidFile> PidFile::create(const std::string& path)
{
    // As QEMU: the file stays open with a write lock held, so a second
    // instance given the same -pidfile refuses to start instead of
    // overwriting the first one's pid.
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return Error::from_errno(errno, "cannot create PID file: Could not create '" + path + "'");
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &lock) < 0) {
        int err = errno == EACCES ? EAGAIN : errno;
        close(fd);
        return Error::from_errno(err, "cannot create PID file: Cannot lock pid file");
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
        int err = errno ? errno : EIO;
        close(fd);
        return Error::from_errno(err, "cannot create PID file: Failed to write pid file");
    }
    // Removed at exit by absolute path: the daemon's working directory is /.
    char* abs = realpath(path.c_str(), nullptr);
    PidFile p;
    p.m_path = abs ? abs : path;
    p.m_fd = fd;
    free(abs);
    return p;
}

PidFile::~PidFile()
{
    if (!m_path.empty())
        unlink(m_path.c_str());
    if (m_fd >= 0)
        close(m_fd);
}

} // namespace kiln::system
