// monitor_fake_vm: the monitor on stdio (HMP, raw terminal) with the
// FakeMachine behind it, plus QMP on a unix socket if a path is given.
// For trying the line editor and QMP by hand; not a test and not installed.
//   build/tests/unit/monitor/monitor_fake_vm [/tmp/qmp.sock]
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>

#include "monitor/monitor.h"
#include "tests/unit/monitor/fake_machine.h"

namespace {

class QuittingMachine : public kiln::monitor::testing::FakeMachine {
public:
    explicit QuittingMachine(kiln::EventLoop& loop)
        : m_loop(loop)
    {
    }
    void quit() override
    {
        m_loop.schedule([this] { m_loop.stop(); });
    }

private:
    kiln::EventLoop& m_loop;
};

} // namespace

int main(int argc, char** argv)
{
    signal(SIGPIPE, SIG_IGN);
    auto loop = std::move(kiln::EventLoop::create()).value();
    QuittingMachine machine(*loop);
    kiln::monitor::Monitor monitor(*loop, machine);
    termios saved {};
    bool tty = isatty(0) && tcgetattr(0, &saved) == 0;
    if (tty) {
        termios raw = saved;
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ECHONL | IEXTEN);
        raw.c_iflag &= ~tcflag_t(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(0, TCSANOW, &raw);
    }
    auto hmp = monitor.attach_fds(kiln::monitor::MonitorProtocol::Hmp, 0, 1);
    if (!hmp) {
        std::fprintf(stderr, "monitor_fake_vm: %s\n", hmp.error().message().c_str());
        return 1;
    }
    if (argc > 1) {
        auto qmp = monitor.listen_unix(kiln::monitor::MonitorProtocol::Qmp, argv[1]);
        if (!qmp) {
            std::fprintf(stderr, "monitor_fake_vm: %s\n", qmp.error().message().c_str());
            return 1;
        }
    }
    loop->run();
    if (tty)
        tcsetattr(0, TCSANOW, &saved);
    return 0;
}
