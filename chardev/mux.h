// The Ctrl-A escape multiplexer QEMU puts on -nographic's stdio:
//   C-a h  help            C-a x  exit           C-a s  sync disks
//   C-a t  timestamps      C-a b  send break     C-a c  monitor
//   C-a C-a  a literal C-a
// It filters host input (escape commands are consumed) and, with
// timestamps on, prefixes each output line with the time since start.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace kiln::chardev {

struct MuxActions {
    std::function<void()> exit;
    std::function<void()> send_break;
    std::function<void()> sync_disks;
    std::function<void()> toggle_monitor;
    // Text for the user's terminal (help, notices), CRLF line ends.
    std::function<void(const std::string&)> print;
};

class MuxFilter {
public:
    static constexpr uint8_t k_escape = 0x01; // Ctrl-A

    explicit MuxFilter(MuxActions actions) : m_actions(std::move(actions)) {}

    // Host input -> bytes for the guest's serial port.
    std::vector<uint8_t> filter_input(std::span<const uint8_t> in);
    // Guest output -> bytes for the terminal.
    std::vector<uint8_t> filter_output(std::span<const uint8_t> out, uint64_t since_start_ns);

    bool timestamps() const { return m_timestamps; }
    static std::string help_text();

private:
    MuxActions m_actions;
    bool m_escape = false;
    bool m_timestamps = false;
    bool m_line_start = true;
};

} // namespace kiln::chardev
