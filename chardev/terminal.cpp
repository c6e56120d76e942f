#include "chardev/terminal.h"

#include <termios.h>
#include <unistd.h>

#include <cstdlib>

namespace kiln::chardev {

namespace {
struct termios g_saved;
volatile bool g_saved_valid = false;
bool g_atexit_registered = false;
} // namespace

void terminal_enter_raw()
{
    if (!isatty(0) || g_saved_valid)
        return;
    struct termios t;
    if (tcgetattr(0, &t) < 0)
        return;
    g_saved = t;
    g_saved_valid = true;
    if (!g_atexit_registered) {
        atexit(terminal_restore);
        g_atexit_registered = true;
    }
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag |= OPOST;
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    t.c_cflag &= ~(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
}

void terminal_restore()
{
    if (!g_saved_valid)
        return;
    tcsetattr(0, TCSANOW, &g_saved);
    g_saved_valid = false;
}

} // namespace kiln::chardev
