// Connection: a byte stream on the event loop over one socket fd or an
// input/output fd pair (stdio). Non-blocking reads and writes with an
// output buffer; a peer that stops reading is cut off once too much output
// is queued, and input is paused while output is backed up, so no client
// can make the monitor's memory grow without bound.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "util/event_loop.h"
#include "util/result.h"

namespace kiln::monitor {

class Connection {
public:
    static constexpr size_t k_read_chunk_bytes = 64 * 1024;
    static constexpr size_t k_pause_input_bytes = 1 << 20; // stop reading above this
    static constexpr size_t k_max_output_bytes = 16 << 20; // drop the peer above this

    enum class Ownership { Owned, Borrowed }; // Borrowed fds (stdio) are not closed

    // in_fd == out_fd for a socket.
    static Result<std::unique_ptr<Connection>> create(EventLoop& loop, int in_fd, int out_fd, Ownership ownership);
    ~Connection();

    // on_data gets each chunk read; on_closed runs once when the peer hangs
    // up or the connection is dropped (it may destroy the Connection only
    // from a later bottom half).
    void set_handlers(std::function<void(std::string_view)> on_data, std::function<void()> on_closed);

    void write(std::string_view bytes);
    // Stops reading; closes once queued output is written.
    void close_after_flush();
    // Holds input back (no reads, so no EOF either) while the monitor runs
    // a command that spins the loop nested; hang-ups are still noticed.
    void pause_input(bool paused);
    bool closed() const { return m_closed; }
    size_t queued_output_bytes() const { return m_output.size() - m_output_offset; }

private:
    Connection(EventLoop& loop, int in_fd, int out_fd, Ownership ownership);
    void on_in_event(uint32_t events);
    void on_out_event(uint32_t events);
    void flush();
    void update_interest();
    void shut(bool notify);
    void schedule_file_read();

    EventLoop& m_loop;
    int m_in_fd;
    int m_out_fd;
    Ownership m_ownership;
    bool m_closed = false;
    bool m_closing = false;
    bool m_input_paused = false;
    bool m_in_registered = false;
    bool m_out_registered = false;
    bool m_in_is_file = false;
    bool m_out_is_socket = true; // until send() says ENOTSOCK
    std::string m_output;
    size_t m_output_offset = 0;
    std::function<void(std::string_view)> m_on_data;
    std::function<void()> m_on_closed;
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
};

} // namespace kiln::monitor
