// CodeBuffer: executable memory for generated code, W^X by dual mapping.
// One memfd is mapped twice: a read-write view the compiler writes through
// and a read-execute view the CPU runs, so no page is ever writable and
// executable at once and nothing needs mprotect() per compiled block. The
// buffer is bump-allocated and emptied wholesale (reset()) when full.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/result.h"

namespace kiln::accel::interp::jit {

class CodeBuffer {
public:
    CodeBuffer() = default;
    ~CodeBuffer();
    CodeBuffer(const CodeBuffer&) = delete;
    CodeBuffer& operator=(const CodeBuffer&) = delete;

    Result<void> init(size_t size_bytes);
    // Copies `len` bytes in and returns their executable address, or
    // nullptr when the buffer is full (the caller resets it and retries).
    const uint8_t* add(const uint8_t* bytes, size_t len);
    void reset() { m_used_bytes = 0; }
    size_t used_bytes() const { return m_used_bytes; }
    size_t size_bytes() const { return m_size_bytes; }
    // The executable address `off` bytes into the buffer.
    const uint8_t* exec_at(size_t off) const { return m_exec + off; }
    size_t offset_of(const uint8_t* exec) const { return size_t(exec - m_exec); }

private:
    uint8_t* m_write = nullptr;
    const uint8_t* m_exec = nullptr;
    size_t m_size_bytes = 0;
    size_t m_used_bytes = 0;
};

} // namespace kiln::accel::interp::jit
