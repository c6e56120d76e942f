// Unix-socket chardev: a server (listen at PATH; with wait, block until
// the first client connects, as QEMU does) or a client. One connection
// at a time; a server takes a new client after the old one leaves.
#pragma once

#include <mutex>
#include <string>

#include "chardev/chardev.h"

namespace kiln::chardev {

class SocketChardev final : public Chardev {
public:
    static Result<std::unique_ptr<SocketChardev>> open(const ChardevSpec& spec, const std::string& label);
    ~SocketChardev() override;

    void write(std::span<const uint8_t> bytes) override;
    Result<void> attach(EventLoop& loop, InputHandler on_input) override;
    void detach() override;
    bool connected();

private:
    SocketChardev() = default;
    void accept_client();
    void watch_client();
    void drop_client();

    std::string m_path;
    bool m_server = false;
    int m_listen_fd = -1;
    int m_client_fd = -1; // guarded by m_lock for writers
    std::mutex m_lock;
    EventLoop* m_loop = nullptr;
    InputHandler m_on_input;
};

} // namespace kiln::chardev
