#include "block/crypto/secure_bytes.h"

#include <string>

#include <openssl/crypto.h>

namespace kiln::block::crypto {

void SecureBytes::wipe()
{
    if (!m_bytes.empty())
        OPENSSL_cleanse(m_bytes.data(), m_bytes.size());
    m_bytes.clear();
}

SecureBytes& SecureBytes::operator=(const SecureBytes& other)
{
    if (this != &other) {
        wipe();
        m_bytes = other.m_bytes;
    }
    return *this;
}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept
{
    if (this != &other) {
        wipe();
        m_bytes = std::move(other.m_bytes);
        other.m_bytes.clear();
    }
    return *this;
}

void wipe_string(std::string& text)
{
    // The whole capacity: a shorter string may sit on a longer old secret.
    if (text.capacity())
        OPENSSL_cleanse(text.data(), text.capacity());
    text.clear();
}

} // namespace kiln::block::crypto
