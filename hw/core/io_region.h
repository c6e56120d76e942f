// IoRegion: what a device exposes on a bus. The device sees offsets from
// the start of its region, never absolute addresses; the board decides
// where the region lives (see bus.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace kiln::hw {

class IoRegion {
public:
    virtual ~IoRegion() = default;
    // size is 1, 2 or 4 for port I/O, 1..8 for MMIO. Reads of bits the
    // device does not implement return ones, as on a real bus.
    virtual uint64_t read(uint64_t offset, unsigned size) = 0;
    virtual void write(uint64_t offset, unsigned size, uint64_t value) = 0;
};

// Adapter for devices that own several regions (the PIC's ELCR next to its
// command ports, the PIT's port 0x61): each region is a pair of lambdas
// into the device.
class FnRegion final : public IoRegion {
public:
    using ReadFn = std::function<uint64_t(uint64_t offset, unsigned size)>;
    using WriteFn = std::function<void(uint64_t offset, unsigned size, uint64_t value)>;
    FnRegion() = default;
    FnRegion(ReadFn r, WriteFn w) : m_read(std::move(r)), m_write(std::move(w)) {}
    uint64_t read(uint64_t offset, unsigned size) override
    {
        return m_read ? m_read(offset, size) : ~uint64_t(0);
    }
    void write(uint64_t offset, unsigned size, uint64_t value) override
    {
        if (m_write)
            m_write(offset, size, value);
    }

private:
    ReadFn m_read;
    WriteFn m_write;
};

// Mask for an access of `size` bytes.
inline uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~uint64_t(0) : (uint64_t(1) << (size * 8)) - 1;
}

} // namespace kiln::hw
