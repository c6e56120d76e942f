#include "monitor/telnet.h"

namespace kiln::monitor {

namespace {
constexpr uint8_t k_iac = 255, k_will = 251, k_wont = 252, k_do = 253, k_dont = 254, k_sb = 250, k_se = 240;
constexpr uint8_t k_opt_binary = 0, k_opt_echo = 1, k_opt_sga = 3;
} // namespace

std::string telnet_greeting()
{
    const uint8_t bytes[] = { k_iac, k_will, k_opt_echo, k_iac, k_will, k_opt_sga, k_iac, k_will, k_opt_binary, k_iac,
        k_do, k_opt_binary };
    return std::string(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

std::string TelnetFilter::filter(std::string_view in)
{
    std::string out;
    for (char ch : in) {
        uint8_t c = uint8_t(ch);
        switch (m_state) {
        case State::AfterCr:
            m_state = State::Data;
            if (c == 0)
                break; // CR NUL is a bare CR
            [[fallthrough]];
        case State::Data:
            if (c == k_iac) {
                m_state = State::Iac;
            } else {
                out += ch;
                if (c == '\r')
                    m_state = State::AfterCr;
            }
            break;
        case State::Iac:
            if (c == k_iac) {
                out += ch; // an escaped 0xff data byte
                m_state = State::Data;
            } else if (c == k_will || c == k_wont || c == k_do || c == k_dont) {
                m_state = State::Option;
            } else if (c == k_sb) {
                m_state = State::Sub;
            } else {
                m_state = State::Data; // NOP, GA, BRK, ...: no data
            }
            break;
        case State::Option:
            m_state = State::Data;
            break;
        case State::Sub:
            if (c == k_iac)
                m_state = State::SubIac;
            break;
        case State::SubIac:
            m_state = c == k_se ? State::Data : State::Sub;
            break;
        }
    }
    return out;
}

} // namespace kiln::monitor
