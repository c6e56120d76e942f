#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "chardev/chardev.h"
#include "chardev/chardev_spec.h"
#include "chardev/mux.h"
#include "tests/unit/system/file_text.h"

namespace kiln::chardev {
namespace {

TEST(ChardevSpec, Parses)
{
    EXPECT_EQ(parse_chardev_spec("pty").value().kind, ChardevKind::Pty);
    auto mon = parse_chardev_spec("mon:stdio").value();
    EXPECT_TRUE(mon.mux_monitor);
    EXPECT_EQ(mon.kind, ChardevKind::Stdio);
    auto u = parse_chardev_spec("unix:/tmp/a.sock,server=on,wait=off").value();
    EXPECT_EQ(u.path, "/tmp/a.sock");
    EXPECT_TRUE(u.server);
    EXPECT_FALSE(u.wait);
    auto w = parse_chardev_spec("unix:/tmp/b.sock,server").value();
    EXPECT_TRUE(w.wait);
    EXPECT_EQ(parse_chardev_spec("file:").error().message(), "'file:' needs a file name (file:PATH)");
    EXPECT_EQ(parse_chardev_spec("unix:/x,telnet").error().message(),
              "'unix:/x,telnet' uses option 'telnet', which Kiln does not support");
    EXPECT_EQ(parse_chardev_spec("mon:pty").error().message(),
              "'mon:pty' is not supported: the monitor can only share stdio (mon:stdio)");
}

TEST(Mux, EscapesAreConsumed)
{
    int exits = 0, breaks = 0, monitor = 0;
    std::string printed;
    MuxActions a;
    a.exit = [&] { exits++; };
    a.send_break = [&] { breaks++; };
    a.toggle_monitor = [&] { monitor++; };
    a.print = [&](const std::string& s) { printed += s; };
    MuxFilter mux(a);
    const uint8_t in[] = {'a', 1, 'h', 'b', 1, 1, 1, 'b', 1, 'c', 1, 'x', 'z'};
    auto out = mux.filter_input(in);
    EXPECT_EQ(std::string(out.begin(), out.end()), std::string("ab\x01z"));
    EXPECT_EQ(exits, 1);
    EXPECT_EQ(breaks, 1);
    EXPECT_EQ(monitor, 1);
    EXPECT_NE(printed.find("C-a x    exit emulator"), std::string::npos);
}

TEST(Mux, EscapeSplitAcrossReads)
{
    int exits = 0;
    MuxActions a;
    a.exit = [&] { exits++; };
    MuxFilter mux(a);
    const uint8_t first[] = {1};
    const uint8_t second[] = {'x'};
    EXPECT_TRUE(mux.filter_input(first).empty());
    EXPECT_TRUE(mux.filter_input(second).empty());
    EXPECT_EQ(exits, 1);
}

TEST(Mux, TimestampsPrefixLines)
{
    MuxFilter mux(MuxActions{});
    const uint8_t t[] = {1, 't'};
    (void)mux.filter_input(t);
    const uint8_t text[] = {'o', 'k', '\n', 'n'};
    auto out = mux.filter_output(text, 3723004000000ull); // 1h 2m 3.004s
    EXPECT_EQ(std::string(out.begin(), out.end()), "[01:02:03.004] ok\n[01:02:03.004] n");
}

TEST(Chardev, FileWritesBytes)
{
    char path[] = "/tmp/kiln-chardev-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    ChardevSpec spec;
    spec.kind = ChardevKind::File;
    spec.path = path;
    {
        auto c = open_chardev(spec, "serial0");
        ASSERT_TRUE(c.ok());
        const uint8_t hello[] = {'h', 'i'};
        c.value()->write(hello);
    }
    EXPECT_EQ(system::test::file_text(path), "hi");
    unlink(path);
    spec.path = "/nonexistent/dir/file";
    auto bad = open_chardev(spec, "serial0");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "Could not open '/nonexistent/dir/file': No such file or directory");
    spec.kind = ChardevKind::None;
    EXPECT_EQ(open_chardev(spec, "serial0").value(), nullptr);
}

TEST(Chardev, UnixServerNowaitAcceptsAClient)
{
    auto loop = EventLoop::create().value();
    std::string path = "/tmp/kiln-chardev-test-" + std::to_string(getpid()) + ".sock";
    auto spec = parse_chardev_spec("unix:" + path + ",server,nowait").value();
    auto c = open_chardev(spec, "serial0");
    ASSERT_TRUE(c.ok()) << c.error().message();
    std::string got;
    ASSERT_TRUE(c.value()->attach(*loop, [&](std::span<const uint8_t> b) { got.append(b.begin(), b.end()); }).ok());
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(write(fd, "ping", 4), 4);
    for (int i = 0; i < 100 && got.size() < 4; i++)
        loop->run_once(10);
    EXPECT_EQ(got, "ping");
    const uint8_t pong[] = {'p', 'o', 'n', 'g'};
    c.value()->write(pong);
    char buf[8] = {};
    ASSERT_EQ(read(fd, buf, 4), 4);
    EXPECT_EQ(std::string(buf), "pong");
    close(fd);
    c.value()->detach();
}

} // namespace
} // namespace kiln::chardev
