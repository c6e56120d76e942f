// Connection: output buffering, input back-pressure and the cut-off for a
// peer that never reads, over a socketpair on a real event loop.
#include <unistd.h>

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "monitor/connection.h"

namespace kiln::monitor {
namespace {

class ConnectionTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        loop = std::move(EventLoop::create()).value();
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        conn = std::move(Connection::create(*loop, fds[0], fds[0], Connection::Ownership::Owned)).value();
        conn->set_handlers([this](std::string_view bytes) { on_data(bytes); }, [this] { ++closed_calls; });
    }
    void TearDown() override
    {
        conn.reset();
        ::close(fds[1]);
    }
    void spin(int rounds)
    {
        for (int i = 0; i < rounds; ++i)
            loop->run_once(0);
    }
    std::string drain_peer()
    {
        std::string got;
        char buf[65536];
        for (;;) {
            ssize_t n = recv(fds[1], buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0)
                return got;
            got.append(buf, size_t(n));
        }
    }

    std::function<void(std::string_view)> on_data = [](std::string_view) {};
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<Connection> conn;
    int fds[2] = { -1, -1 };
    int closed_calls = 0;
};

TEST_F(ConnectionTest, ChattyRepliesPauseInputInsteadOfGrowing)
{
    size_t received = 0;
    // Every input byte asks for 100 bytes of reply: a client that sends
    // without reading must not make the queue grow past the pause mark by
    // more than one read's worth.
    on_data = [&](std::string_view bytes) {
        received += bytes.size();
        conn->write(std::string(bytes.size() * 100, 'r'));
    };
    std::string request(4096, 'q');
    size_t sent = 0;
    for (int i = 0; i < 200; ++i) {
        ssize_t n = send(fds[1], request.data(), request.size(), MSG_DONTWAIT);
        if (n > 0)
            sent += size_t(n);
        spin(2);
    }
    EXPECT_FALSE(conn->closed());
    EXPECT_LT(received, sent); // input was paused while replies were queued
    EXPECT_LE(conn->queued_output_bytes(), Connection::k_pause_input_bytes + Connection::k_read_chunk_bytes * 100);
    // Once the peer reads, everything flows: every byte sent is answered.
    size_t replies = 0;
    for (int i = 0; i < 20000 && replies < sent * 100; ++i) {
        replies += drain_peer().size();
        spin(1);
    }
    EXPECT_EQ(received, sent);
    EXPECT_EQ(replies, sent * 100);
}

TEST_F(ConnectionTest, PeerThatNeverReadsIsCutOff)
{
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 40 && !conn->closed(); ++i)
        conn->write(chunk);
    EXPECT_TRUE(conn->closed());
    EXPECT_EQ(closed_calls, 1);
    conn->write("more"); // harmless after close
    EXPECT_EQ(closed_calls, 1);
}

TEST_F(ConnectionTest, CloseAfterFlushDeliversEverythingFirst)
{
    conn->write("bye\r\n");
    conn->close_after_flush();
    spin(3);
    EXPECT_EQ(drain_peer(), "bye\r\n");
    EXPECT_TRUE(conn->closed());
    char c;
    EXPECT_EQ(recv(fds[1], &c, 1, 0), 0); // EOF
}

TEST_F(ConnectionTest, PeerHangupIsReportedOnce)
{
    ::shutdown(fds[1], SHUT_RDWR);
    spin(3);
    EXPECT_TRUE(conn->closed());
    EXPECT_EQ(closed_calls, 1);
}

} // namespace
} // namespace kiln::monitor
