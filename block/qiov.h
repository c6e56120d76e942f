// QIov: a scatter-gather list over host memory, the buffer type of every
// block-layer request (so a device's DMA segments need no bounce copy).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::block {

class QIov {
public:
    QIov() = default;
    QIov(void* base, size_t len) { add(base, len); }

    void add(void* base, size_t len);
    size_t size() const { return m_size; }
    bool empty() const { return m_size == 0; }
    const std::vector<iovec>& iovecs() const { return m_iov; }
    int count() const { return int(m_iov.size()); }

    // A view of [offset, offset+len) of this list (no copy of data).
    QIov slice(size_t offset, size_t len) const;

    // Copies between the list (at `offset`) and a flat buffer.
    void copy_in(size_t offset, const void* src, size_t len) const;
    void copy_out(size_t offset, void* dst, size_t len) const;
    void fill(size_t offset, int byte, size_t len) const;
    bool is_zero(size_t offset, size_t len) const;
    bool is_zero() const { return is_zero(0, m_size); }

private:
    std::vector<iovec> m_iov;
    size_t m_size = 0;
};

// True if every byte of buf is zero (fast path for zero detection).
bool buffer_is_zero(const void* buf, size_t len);

} // namespace kiln::block
