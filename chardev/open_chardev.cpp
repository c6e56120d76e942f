#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "chardev/chardev.h"
#include "chardev/fd_chardev.h"
#include "chardev/socket_chardev.h"
#include "chardev/terminal.h"

namespace kiln::chardev {

Result<int> open_pty_master(const std::string& label)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return Error::from_errno(errno, "Failed to create a pty");
    if (grantpt(master) < 0 || unlockpt(master) < 0) {
        int err = errno;
        close(master);
        return Error::from_errno(err, "Failed to set up the pty");
    }
    const char* name = ptsname(master);
    std::string slave_name = name ? name : "?";
    // Raw mode on the slave side, so the guest sees bytes as sent.
    int slave = open(slave_name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave >= 0) {
        struct termios t;
        if (tcgetattr(slave, &t) == 0) {
            cfmakeraw(&t);
            tcsetattr(slave, TCSANOW, &t);
        }
        // Kept open so output does not fail with EIO before a user attaches;
        // it leaks for the life of the process, which is the life of the VM.
    }
    fprintf(stderr, "char device redirected to %s (label %s)\n", slave_name.c_str(), label.c_str());
    int flags = fcntl(master, F_GETFL);
    fcntl(master, F_SETFL, flags | O_NONBLOCK);
    return master;
}

namespace {

class NullChardev final : public Chardev {
public:
    void write(std::span<const uint8_t>) override {}
    Result<void> attach(EventLoop&, InputHandler) override { return {}; }
};

class StdioChardev final : public FdChardev {
public:
    StdioChardev() : FdChardev(0, 1, false) { terminal_enter_raw(); }
    ~StdioChardev() override { terminal_restore(); }
};

Result<std::unique_ptr<Chardev>> open_pty(const std::string& label)
{
    int master = TRY(open_pty_master(label));
    return std::unique_ptr<Chardev>(new FdChardev(master, master, true));
}

} // namespace

Result<std::unique_ptr<Chardev>> open_chardev(const ChardevSpec& spec, const std::string& label)
{
    switch (spec.kind) {
    case ChardevKind::None:
        return std::unique_ptr<Chardev>();
    case ChardevKind::Null:
        return std::unique_ptr<Chardev>(new NullChardev());
    case ChardevKind::Stdio:
        return std::unique_ptr<Chardev>(new StdioChardev());
    case ChardevKind::File: {
        int fd = open(spec.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0)
            return Error::from_errno(errno, "Could not open '" + spec.path + "'");
        return std::unique_ptr<Chardev>(new FdChardev(-1, fd, true));
    }
    case ChardevKind::UnixSocket: {
        auto s = TRY(SocketChardev::open(spec, label));
        return std::unique_ptr<Chardev>(std::move(s));
    }
    case ChardevKind::Pty:
        return open_pty(label);
    }
    return Error::internal("unknown chardev kind");
}

} // namespace kiln::chardev
