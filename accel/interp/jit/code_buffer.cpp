#include "accel/interp/jit/code_buffer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sys/mman.h>

namespace kiln::accel::interp::jit {

CodeBuffer::~CodeBuffer()
{
    if (m_write)
        munmap(m_write, m_size_bytes);
    if (m_exec)
        munmap(const_cast<uint8_t*>(m_exec), m_size_bytes);
}

Result<void> CodeBuffer::init(size_t size_bytes)
{
    int fd = memfd_create("kiln-jit", MFD_CLOEXEC);
    if (fd < 0)
        return Error::from_errno(errno, "jit: memfd_create");
    if (ftruncate(fd, off_t(size_bytes)) != 0) {
        int e = errno;
        close(fd);
        return Error::from_errno(e, "jit: ftruncate of the code buffer");
    }
    void* w = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    void* x = w == MAP_FAILED ? MAP_FAILED : mmap(nullptr, size_bytes, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (x == MAP_FAILED) {
        if (w != MAP_FAILED)
            munmap(w, size_bytes);
        return Error::from_errno(e, "jit: mapping the code buffer");
    }
    m_write = static_cast<uint8_t*>(w);
    m_exec = static_cast<const uint8_t*>(x);
    m_size_bytes = size_bytes;
    m_used_bytes = 0;
    return {};
}

const uint8_t* CodeBuffer::add(const uint8_t* bytes, size_t len)
{
    // 16-byte aligned entry points.
    const size_t start = (m_used_bytes + 15) & ~size_t(15);
    if (start + len > m_size_bytes)
        return nullptr;
    std::memcpy(m_write + start, bytes, len);
    m_used_bytes = start + len;
    return m_exec + start;
}

} // namespace kiln::accel::interp::jit
