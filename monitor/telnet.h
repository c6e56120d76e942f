// The telnet side of `-monitor telnet:HOST:PORT,server`: the options QEMU
// offers when a client connects (the server echoes, character at a time,
// binary), and a filter that takes the client's negotiation (IAC ...)
// out of the byte stream, RFC 854/855.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::monitor {

// IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD, IAC WILL BINARY, IAC DO BINARY.
std::string telnet_greeting();

class TelnetFilter {
public:
    // The data bytes of `in` (negotiation removed, IAC IAC -> 0xff, the NUL
    // after a CR dropped).
    std::string filter(std::string_view in);

private:
    enum class State { Data, Iac, Option, Sub, SubIac, AfterCr };
    State m_state = State::Data;
};

} // namespace kiln::monitor
