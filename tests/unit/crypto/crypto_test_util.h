// Helpers shared by the crypto unit tests: hex conversion, running
// qemu-img/qemu-io with their output captured.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::block::crypto::test {

inline std::vector<uint8_t> from_hex(std::string_view hex)
{
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(uint8_t(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return out;
}

inline std::string to_hex(const std::vector<uint8_t>& bytes)
{
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

inline std::vector<uint8_t> bytes_of(std::string_view text) { return { text.begin(), text.end() }; }

// QEMU's PBKDF2 calibration fails at random on this host with this message
// (its thread CPU clock reads 0 ms for a short run).
constexpr const char* k_qemu_calibration_failed = "Unable to get accurate CPU usage";

struct Command {
    int status = -1;
    std::string output; // stdout and stderr
};

inline Command sh(const std::string& cmd)
{
    Command r;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p)
        return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        r.output.append(buf, n);
    r.status = pclose(p);
    return r;
}

// Runs a command that calibrates PBKDF2 until it does not fail that way
// (at most 20 tries).
inline Command sh_calibrating(const std::string& cmd)
{
    Command r;
    for (int attempt = 0; attempt < 20; ++attempt) {
        r = sh(cmd);
        if (r.status == 0 || r.output.find(k_qemu_calibration_failed) == std::string::npos)
            break;
    }
    return r;
}

} // namespace kiln::block::crypto::test
