// SecureBytes: a byte buffer for keys and passphrases that is wiped
// (OPENSSL_cleanse) when it is destroyed or reassigned, so secrets do not
// linger in freed heap memory where a core dump would show them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kiln::block::crypto {

class SecureBytes {
public:
    SecureBytes() = default;
    explicit SecureBytes(size_t size_bytes)
        : m_bytes(size_bytes)
    {
    }
    explicit SecureBytes(std::span<const uint8_t> data)
        : m_bytes(data.begin(), data.end())
    {
    }
    explicit SecureBytes(std::string_view text)
        : m_bytes(text.begin(), text.end())
    {
    }
    ~SecureBytes() { wipe(); }

    SecureBytes(const SecureBytes& other)
        : m_bytes(other.m_bytes)
    {
    }
    SecureBytes& operator=(const SecureBytes& other);
    SecureBytes(SecureBytes&& other) noexcept
        : m_bytes(std::move(other.m_bytes))
    {
        other.m_bytes.clear();
    }
    SecureBytes& operator=(SecureBytes&& other) noexcept;

    uint8_t* data() { return m_bytes.data(); }
    const uint8_t* data() const { return m_bytes.data(); }
    size_t size() const { return m_bytes.size(); }
    bool empty() const { return m_bytes.empty(); }
    uint8_t& operator[](size_t i) { return m_bytes[i]; }
    uint8_t operator[](size_t i) const { return m_bytes[i]; }
    std::span<uint8_t> span() { return m_bytes; }
    std::span<const uint8_t> span() const { return m_bytes; }

    // Zeroes the bytes and empties the buffer.
    void wipe();

private:
    std::vector<uint8_t> m_bytes;
};

// Wipes a std::string that held a secret (e.g. a copy from BlockContext).
void wipe_string(std::string& text);

} // namespace kiln::block::crypto
