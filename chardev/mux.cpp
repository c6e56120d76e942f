#include "chardev/mux.h"

#include <cstdio>

namespace kiln::chardev {

std::string MuxFilter::help_text()
{
    return "\r\n"
           "C-a h    print this help\r\n"
           "C-a x    exit emulator\r\n"
           "C-a s    save disk data back to file (if -snapshot)\r\n"
           "C-a t    toggle console timestamps\r\n"
           "C-a b    send break (magic sysrq)\r\n"
           "C-a c    switch between console and monitor\r\n"
           "C-a C-a  sends C-a\r\n";
}

std::vector<uint8_t> MuxFilter::filter_input(std::span<const uint8_t> in)
{
    std::vector<uint8_t> out;
    for (uint8_t b : in) {
        if (!m_escape) {
            if (b == k_escape)
                m_escape = true;
            else
                out.push_back(b);
            continue;
        }
        m_escape = false;
        auto call = [](const std::function<void()>& f) {
            if (f)
                f();
        };
        switch (b) {
        case k_escape: out.push_back(k_escape); break;
        case 'h': case '?':
            if (m_actions.print)
                m_actions.print(help_text());
            break;
        case 'x': call(m_actions.exit); break;
        case 's': call(m_actions.sync_disks); break;
        case 'b': call(m_actions.send_break); break;
        case 'c': call(m_actions.toggle_monitor); break;
        case 't': m_timestamps = !m_timestamps; break;
        default: break; // unknown escapes are swallowed, as in QEMU
        }
    }
    return out;
}

std::vector<uint8_t> MuxFilter::filter_output(std::span<const uint8_t> bytes, uint64_t since_start_ns)
{
    if (!m_timestamps) {
        if (!bytes.empty())
            m_line_start = bytes.back() == '\n';
        return {bytes.begin(), bytes.end()};
    }
    std::vector<uint8_t> out;
    for (uint8_t b : bytes) {
        if (m_line_start) {
            uint64_t ms = since_start_ns / 1000000;
            char stamp[32];
            int n = snprintf(stamp, sizeof stamp, "[%02u:%02u:%02u.%03u] ", unsigned(ms / 3600000),
                             unsigned(ms / 60000 % 60), unsigned(ms / 1000 % 60), unsigned(ms % 1000));
            out.insert(out.end(), stamp, stamp + n);
            m_line_start = false;
        }
        out.push_back(b);
        if (b == '\n')
            m_line_start = true;
    }
    return out;
}

} // namespace kiln::chardev
