#include "block/qiov.h"

#include <cstring>

namespace kiln::block {

void QIov::add(void* base, size_t len)
{
    if (len == 0)
        return;
    // Merge with the previous segment when contiguous.
    if (!m_iov.empty()) {
        auto& last = m_iov.back();
        if (static_cast<char*>(last.iov_base) + last.iov_len == base) {
            last.iov_len += len;
            m_size += len;
            return;
        }
    }
    m_iov.push_back({base, len});
    m_size += len;
}

// Visits the pieces of [offset, offset+len) as (pointer, length) pairs.
template<typename F>
static void for_each_piece(const std::vector<iovec>& iov, size_t offset, size_t len, F&& f)
{
    size_t done = 0;
    for (auto& seg : iov) {
        if (len == done)
            return;
        if (offset >= seg.iov_len) {
            offset -= seg.iov_len;
            continue;
        }
        size_t n = std::min(seg.iov_len - offset, len - done);
        f(static_cast<char*>(seg.iov_base) + offset, n, done);
        done += n;
        offset = 0;
    }
}

QIov QIov::slice(size_t offset, size_t len) const
{
    QIov out;
    for_each_piece(m_iov, offset, len, [&](char* p, size_t n, size_t) { out.add(p, n); });
    return out;
}

void QIov::copy_in(size_t offset, const void* src, size_t len) const
{
    for_each_piece(m_iov, offset, len,
                   [&](char* p, size_t n, size_t done) { std::memcpy(p, static_cast<const char*>(src) + done, n); });
}

void QIov::copy_out(size_t offset, void* dst, size_t len) const
{
    for_each_piece(m_iov, offset, len,
                   [&](char* p, size_t n, size_t done) { std::memcpy(static_cast<char*>(dst) + done, p, n); });
}

void QIov::fill(size_t offset, int byte, size_t len) const
{
    for_each_piece(m_iov, offset, len, [&](char* p, size_t n, size_t) { std::memset(p, byte, n); });
}

bool QIov::is_zero(size_t offset, size_t len) const
{
    bool zero = true;
    for_each_piece(m_iov, offset, len, [&](char* p, size_t n, size_t) {
        if (zero && !buffer_is_zero(p, n))
            zero = false;
    });
    return zero;
}

bool buffer_is_zero(const void* buf, size_t len)
{
    auto* p = static_cast<const unsigned char*>(buf);
    // Check the head byte-wise, then 8 bytes at a time.
    while (len && (reinterpret_cast<uintptr_t>(p) & 7)) {
        if (*p++)
            return false;
        --len;
    }
    auto* w = reinterpret_cast<const uint64_t*>(p);
    size_t words = len / 8;
    for (size_t i = 0; i + 4 <= words; i += 4)
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
            return false;
    for (size_t i = words & ~size_t(3); i < words; ++i)
        if (w[i])
            return false;
    p = reinterpret_cast<const unsigned char*>(w + words);
    for (size_t i = 0; i < len % 8; ++i)
        if (p[i])
            return false;
    return true;
}

} // namespace kiln::block
