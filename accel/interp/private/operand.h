// Small operand helpers shared by the exec_*.cpp files.
#pragma once

#include <cstdint>

namespace kiln::accel::interp {

// All ones in the low `size` bytes (size 1, 2, 4 or 8).
inline uint64_t size_mask(unsigned size) { return size == 8 ? ~0ull : (1ull << (size * 8)) - 1; }

// Address-size wrap mask (2, 4 or 8 bytes).
inline uint64_t addr_mask(unsigned addrsize) { return addrsize == 2 ? 0xffff : addrsize == 4 ? 0xffffffff : ~0ull; }

inline int64_t sign_extend(uint64_t v, unsigned size)
{
    switch (size) {
    case 1:
        return int8_t(v);
    case 2:
        return int16_t(v);
    case 4:
        return int32_t(v);
    default:
        return int64_t(v);
    }
}

} // namespace kiln::accel::interp
