// Test helpers that look at images from outside the block layer: run a
// host command (qemu-img, qemu-io), inspect and hold QEMU's lock bytes as
// another open file (OFD locks conflict between open files of one process
// as between processes).
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

namespace kiln::block::test {

// Runs a shell command; its exit status and combined output.
inline std::pair<int, std::string> run_command(const std::string& cmd)
{
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p)
        return { -1, "" };
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p))
        out.append(buf, n);
    int status = pclose(p);
    return { WIFEXITED(status) ? WEXITSTATUS(status) : -1, out };
}

// True if some other open file holds a lock on `byte` of `path`.
inline bool byte_locked(const std::string& path, int byte)
{
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return false;
    struct flock fl { };
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    fl.l_type = F_WRLCK;
    bool locked = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    ::close(fd);
    return locked;
}

// Opens `path` and takes a shared lock on `byte` (201: refuses writers, as
// a read-only qemu-io does). The descriptor, or -1; close it to let go.
inline int hold_lock_byte(const std::string& path, int byte)
{
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return -1;
    struct flock fl { };
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    fl.l_type = F_RDLCK;
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

} // namespace kiln::block::test
