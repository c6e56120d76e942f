// QMP and HMP over real sockets: a small blocking client in the test talks
// to a Monitor whose event loop runs on its own thread.
#include <fcntl.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "monitor/monitor.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class Client {
public:
    explicit Client(int fd)
        : m_fd(fd)
    {
        timeval timeout { 20, 0 }; // a hung monitor fails the test instead of hanging it
        setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }
    ~Client()
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    static Client unix_socket(const std::string& path)
    {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr {};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
        return Client(fd);
    }
    static Client tcp(uint16_t port)
    {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr {};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        return Client(fd);
    }
    Client(Client&& other) noexcept
        : m_fd(other.m_fd)
        , m_buffer(std::move(other.m_buffer))
    {
        other.m_fd = -1;
    }

    void send(std::string_view bytes)
    {
        while (!bytes.empty()) {
            ssize_t n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return;
            bytes.remove_prefix(size_t(n));
        }
    }
    // One "\r\n"-terminated line, without the terminator; "" on EOF.
    std::string line()
    {
        for (;;) {
            auto end = m_buffer.find("\r\n");
            if (end != std::string::npos) {
                std::string out = m_buffer.substr(0, end);
                m_buffer.erase(0, end + 2);
                return out;
            }
            if (!fill())
                return "";
        }
    }
    // Reads until `marker` has arrived; returns everything up to and with it.
    std::string until(const std::string& marker)
    {
        for (;;) {
            auto at = m_buffer.find(marker);
            if (at != std::string::npos) {
                std::string out = m_buffer.substr(0, at + marker.size());
                m_buffer.erase(0, at + marker.size());
                return out;
            }
            if (!fill())
                return m_buffer;
        }
    }
    Json ask(const std::string& request)
    {
        send(request + "\n");
        return Json::parse(line(), nullptr, false);
    }
    bool at_eof()
    {
        char c;
        return ::recv(m_fd, &c, 1, 0) == 0;
    }
    void close()
    {
        ::close(m_fd);
        m_fd = -1;
    }

private:
    bool fill()
    {
        char buf[4096];
        ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
        if (n <= 0)
            return false;
        m_buffer.append(buf, size_t(n));
        return true;
    }
    int m_fd;
    std::string m_buffer;
};

class MonitorSocketTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        loop = std::move(EventLoop::create()).value();
        monitor = std::make_unique<Monitor>(*loop, machine);
        path = ::testing::TempDir() + "kiln-qmp-" + std::to_string(getpid()) + ".sock";
        hmp_path = path + ".hmp";
        ASSERT_TRUE(monitor->listen_unix(MonitorProtocol::Qmp, path).ok());
        ASSERT_TRUE(monitor->add_from_option(MonitorProtocol::Hmp, "unix:" + hmp_path + ",server=on,wait=off").ok());
        auto port = monitor->listen_tcp(MonitorProtocol::Qmp, "127.0.0.1", 0);
        ASSERT_TRUE(port.ok());
        tcp_port = port.value();
        thread = std::thread([this] { loop->run(); });
    }
    void TearDown() override
    {
        loop->post([this] { loop->stop(); });
        thread.join();
        monitor.reset();
    }
    // Runs fn on the loop thread and waits for it.
    template<typename Fn> auto on_loop(Fn fn)
    {
        std::promise<decltype(fn())> done;
        auto future = done.get_future();
        loop->post([&] {
            if constexpr (std::is_void_v<decltype(fn())>) {
                fn();
                done.set_value();
            } else {
                done.set_value(fn());
            }
        });
        return future.get();
    }
    Client negotiated_client()
    {
        Client client = Client::unix_socket(path);
        Json greeting = Json::parse(client.line(), nullptr, false);
        EXPECT_TRUE(greeting.contains("QMP"));
        EXPECT_EQ(client.ask(R"({"execute":"qmp_capabilities"})"), Json::parse(R"({"return": {}})"));
        return client;
    }

    testing::FakeMachine machine;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<Monitor> monitor;
    std::thread thread;
    std::string path;
    std::string hmp_path;
    uint16_t tcp_port = 0;
};

TEST_F(MonitorSocketTest, GreetingNegotiationAndIds)
{
    Client client = Client::unix_socket(path);
    Json greeting = Json::parse(client.line());
    EXPECT_EQ(greeting["QMP"]["capabilities"], Json::array({ "oob" }));
    EXPECT_EQ(greeting["QMP"]["version"]["qemu"]["major"], 7);
    EXPECT_EQ(client.ask(R"({"execute":"query-status","id":"early"})")["error"]["class"], "CommandNotFound");
    EXPECT_EQ(client.ask(R"({"execute":"qmp_capabilities","id":1})"), Json::parse(R"({"return": {}, "id": 1})"));
    Json status = client.ask(R"({"execute":"query-status","id":{"nested":[1,2]}})");
    EXPECT_EQ(status["return"]["status"], "prelaunch");
    EXPECT_EQ(status["id"], Json::parse(R"({"nested":[1,2]})"));
    EXPECT_EQ(client.ask(R"({"execute":"eject","arguments":{"device":"nope"}})")["error"]["class"], "DeviceNotFound");
}

TEST_F(MonitorSocketTest, EventsReachEveryNegotiatedClient)
{
    Client a = negotiated_client();
    Client b = negotiated_client();
    Client pending = Client::unix_socket(path);
    pending.line(); // greeting only: no events before negotiation
    // cont emits RESUME before its reply, as QEMU does.
    a.send("{\"execute\":\"cont\"}\n");
    Json event_a = Json::parse(a.line());
    EXPECT_EQ(event_a["event"], "RESUME");
    EXPECT_TRUE(event_a["timestamp"].contains("microseconds"));
    EXPECT_EQ(Json::parse(a.line()), Json::parse(R"({"return": {}})"));
    EXPECT_EQ(Json::parse(b.line())["event"], "RESUME");
    on_loop([this] { (void)machine.stop(); });
    EXPECT_EQ(Json::parse(a.line())["event"], "STOP");
    EXPECT_EQ(Json::parse(b.line())["event"], "STOP");
    on_loop([this] {
        machine.emit(MonitorEvent::BlockIoError,
            { { "device", EventField::Type::String, "ide0-hd0" }, { "operation", EventField::Type::String, "write" },
                { "action", EventField::Type::String, "report" },
                { "nospace", EventField::Type::Bool, "", 0, false } });
    });
    Json io = Json::parse(b.line());
    EXPECT_EQ(io["event"], "BLOCK_IO_ERROR");
    EXPECT_EQ(io["data"]["operation"], "write");
    EXPECT_EQ(pending.ask(R"({"execute":"qmp_capabilities"})"), Json::parse(R"({"return": {}})"));
}

TEST_F(MonitorSocketTest, TwoClientsInterleave)
{
    Client a = negotiated_client();
    Client b = Client::tcp(tcp_port);
    EXPECT_TRUE(Json::parse(b.line()).contains("QMP"));
    b.send(R"({"execute":"qmp_capabilities"})");
    a.send(R"({"execute":"query-name","id":"a1"})");
    EXPECT_EQ(Json::parse(b.line()), Json::parse(R"({"return": {}})"));
    EXPECT_EQ(Json::parse(a.line())["id"], "a1");
    EXPECT_EQ(b.ask(R"({"execute":"query-kvm","id":"b1"})")["id"], "b1");
    EXPECT_EQ(on_loop([this] { return monitor->connection_count(); }), 2u);
}

TEST_F(MonitorSocketTest, InvalidJsonAndHugeLinesLeaveTheConnectionUsable)
{
    Client client = negotiated_client();
    EXPECT_EQ(client.ask("{ bad json }")["error"]["desc"], "JSON parse error, invalid keyword 'bad'");
    EXPECT_EQ(client.ask(R"({"execute":"query-name"})")["return"]["name"], "testvm");
    std::string huge = R"({"execute":"query-name","arguments":{"x":")" + std::string(10 << 20, 'A') + "\"}}\n";
    client.send(huge);
    Json reply = Json::parse(client.line(), nullptr, false);
    EXPECT_EQ(reply["error"]["desc"], "JSON token size limit exceeded");
    EXPECT_EQ(client.ask(R"({"execute":"query-name"})")["return"]["name"], "testvm");
    // A 10 MiB line that is not JSON at all.
    client.send(std::string(10 << 20, 'z') + "\n");
    EXPECT_EQ(Json::parse(client.line(), nullptr, false)["error"]["desc"], "JSON token size limit exceeded");
    EXPECT_EQ(client.ask(R"({"execute":"query-kvm"})")["return"]["present"], true);
}

TEST_F(MonitorSocketTest, DisconnectMidCommandDropsOnlyThatClient)
{
    Client survivor = negotiated_client();
    {
        Client quitter = negotiated_client();
        quitter.send(R"({"execute":"query-st)");
        quitter.close();
    }
    {
        // Gone before reading its reply.
        Client rude = negotiated_client();
        rude.send(R"({"execute":"query-block"})"
                  "\n");
        rude.close();
    }
    EXPECT_EQ(survivor.ask(R"({"execute":"query-name"})")["return"]["name"], "testvm");
    // Closed connections are reaped from a bottom half.
    size_t count = 0;
    for (int i = 0; i < 1000; ++i) {
        count = on_loop([this] { return monitor->connection_count(); });
        if (count == 1)
            break;
        std::this_thread::yield();
    }
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(survivor.ask(R"({"execute":"query-kvm"})")["return"]["enabled"], false);
}

TEST_F(MonitorSocketTest, HmpOverAUnixSocket)
{
    Client hmp = Client::unix_socket(hmp_path);
    EXPECT_EQ(hmp.until("(kiln) "), "Kiln 0.1.0 monitor - type 'help' for more information\r\n(kiln) ");
    hmp.send("info status\r");
    EXPECT_EQ(hmp.until("(kiln) "), "info status\r\nVM status: paused (prelaunch)\r\n(kiln) ");
    hmp.send("info nam\t\r");
    EXPECT_EQ(hmp.until("(kiln) "), "info name \r\ntestvm\r\n(kiln) ");
}

TEST(MonitorOptionTest, RejectsWhatItCannotServe)
{
    testing::FakeMachine machine;
    auto loop = std::move(EventLoop::create()).value();
    Monitor monitor(*loop, machine);
    EXPECT_FALSE(monitor.add_from_option(MonitorProtocol::Qmp, "unix:/tmp/x.sock").ok()); // client mode
    EXPECT_FALSE(monitor.add_from_option(MonitorProtocol::Qmp, "tcp:127.0.0.1:99999,server=on").ok());
    EXPECT_FALSE(monitor.add_from_option(MonitorProtocol::Qmp, "vc").ok());
    auto bad = monitor.add_from_option(MonitorProtocol::Qmp, "tcp:127.0.0.1:0,server=on,bogus=1");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "-qmp: Invalid parameter 'bogus'");
    EXPECT_TRUE(monitor.add_from_option(MonitorProtocol::Qmp, "none").ok());
}

TEST(MonitorFdTest, HmpOnAPipePair)
{
    testing::FakeMachine machine;
    auto loop = std::move(EventLoop::create()).value();
    Monitor monitor(*loop, machine);
    int in[2], out[2];
    ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    ASSERT_TRUE(monitor.attach_fds(MonitorProtocol::Hmp, in[0], out[1]).ok());
    ASSERT_EQ(write(in[1], "info kvm\r", 9), 9);
    std::string got;
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 200 && got.find("disabled") == std::string::npos; ++i) {
        loop->run_once(10);
        char buf[4096];
        ssize_t n = read(out[0], buf, sizeof buf);
        if (n > 0)
            got.append(buf, size_t(n));
    }
    EXPECT_NE(got.find("(kiln) info kvm\r\nkvm support: disabled\r\n"), std::string::npos) << got;
    for (int fd : { in[0], in[1], out[0], out[1] })
        close(fd);
}

} // namespace
} // namespace kiln::monitor
