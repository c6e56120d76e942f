// Persistent dirty bitmaps as seen from above a format driver: the list,
// QEMU's block-dirty-bitmap-{add,remove,clear,enable,disable,merge}
// operations and the bits themselves (qemu-img bitmap, convert --bitmaps).
// A format that can store them (qcow2 v3) returns itself from
// BlockNode::persistent_bitmaps(); changes reach the file on close.
// Error messages are QEMU's (QMP's) so a tool can print them as they are.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"
#include "util/task.h"

namespace kiln::block {

struct DirtyBitmapInfo {
    std::string name;
    uint64_t granularity_bytes = 0;
    bool enabled = false;      // "auto": records writes
    bool inconsistent = false; // was "in-use" on disk: never trusted
};

// One bit per granularity-sized chunk of a disk of disk_bytes, LSB first.
struct DirtyBits {
    uint64_t granularity_bytes = 65536;
    uint64_t disk_bytes = 0;
    std::vector<uint8_t> bits;

    uint64_t chunks() const { return (disk_bytes + granularity_bytes - 1) / granularity_bytes; }
    bool test(uint64_t chunk) const { return chunk / 8 < bits.size() && (bits[chunk / 8] >> (chunk % 8) & 1); }
    // Marks every chunk that [offset, offset+bytes) touches.
    void set_range(uint64_t offset, uint64_t bytes)
    {
        if (bytes == 0 || offset >= disk_bytes)
            return;
        bytes = std::min(bytes, disk_bytes - offset);
        for (uint64_t c = offset / granularity_bytes; c <= (offset + bytes - 1) / granularity_bytes; ++c)
            if (c / 8 < bits.size())
                bits[c / 8] |= uint8_t(1u << (c % 8));
    }
    // QEMU's merge: every byte range dirty in `other` (any granularity,
    // same or other disk size) becomes dirty here.
    void merge(const DirtyBits& other)
    {
        for (uint64_t c = 0; c < other.chunks(); ++c) {
            if (other.bits.size() <= c / 8)
                break;
            if (other.bits[c / 8] == 0) {
                c |= 7; // skip the clean byte
                continue;
            }
            if (other.test(c))
                set_range(c * other.granularity_bytes, other.granularity_bytes);
        }
    }
};

class PersistentBitmaps {
public:
    virtual ~PersistentBitmaps() = default;

    // False where the format could but this image cannot (qcow2 v2):
    // convert --bitmaps refuses such a source or target.
    virtual bool bitmaps_supported() const = 0;
    // In the order of the image's bitmap directory, new ones last.
    virtual std::vector<DirtyBitmapInfo> bitmaps() const = 0;
    // A new persistent bitmap; the granularity is checked as a power of
    // two >= 512 by the caller. nullopt: the format's default.
    virtual Result<void> bitmap_add(const std::string& name, std::optional<uint64_t> granularity_bytes,
                                    bool disabled) = 0;
    virtual Result<void> bitmap_remove(const std::string& name) = 0;
    virtual Result<void> bitmap_clear(const std::string& name) = 0;
    virtual Result<void> bitmap_enable(const std::string& name, bool enabled) = 0;
    // The bits of a consistent bitmap (read from the file if need be).
    virtual Task<Result<DirtyBits>> bitmap_bits(const std::string& name) = 0;
    // Sets in `target` every range dirty in `source`.
    virtual Result<void> bitmap_merge(const std::string& target, const DirtyBits& source) = 0;
    // The name QEMU's messages give the node ("#block123").
    virtual std::string bitmap_node_name() const = 0;
};

} // namespace kiln::block
