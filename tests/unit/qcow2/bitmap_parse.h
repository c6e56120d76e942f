// Reads the persistent bitmaps of a qcow2 file's bytes straight from the
// bitmaps extension, directory, tables and data clusters (qcow2.rst
// "Bitmaps extension"), so tests see what is on disk, not what the driver
// believes.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "block/qcow2/format.h"

namespace kiln::block::test {

using kiln::block::qcow2::load_be16;
using kiln::block::qcow2::load_be32;
using kiln::block::qcow2::load_be64;

struct ParsedBitmap {
    std::string name;
    uint32_t flags = 0;
    uint32_t granularity_bits = 0;
    uint32_t table_size = 0;
    std::set<uint64_t> set_bits;
};

// Parses the bitmaps of image bytes `f` (cluster size `cs`).
inline std::vector<ParsedBitmap> parse_bitmaps(const std::vector<uint8_t>& f, uint64_t cs)
{
    std::vector<ParsedBitmap> out;
    if (!(f.at(95) & 1))
        return out; // autoclear bit 0 clear: no valid bitmaps
    uint32_t hdr_len = load_be32(&f[100]);
    for (size_t p = hdr_len; p + 8 <= f.size();) {
        uint32_t type = load_be32(&f[p]), len = load_be32(&f[p + 4]);
        if (type == 0)
            break;
        if (type == 0x23852875) {
            uint32_t nb = load_be32(&f[p + 8]);
            uint64_t dir = load_be64(&f[p + 24]);
            for (uint32_t i = 0; i < nb; ++i) {
                ParsedBitmap b;
                uint64_t table = load_be64(&f[dir]);
                b.table_size = load_be32(&f[dir + 8]);
                b.flags = load_be32(&f[dir + 12]);
                b.granularity_bits = f[dir + 17];
                uint32_t name_size = load_be16(&f[dir + 18]), extra = load_be32(&f[dir + 20]);
                b.name.assign(reinterpret_cast<const char*>(&f[dir + 24 + extra]), name_size);
                for (uint32_t t = 0; t < b.table_size; ++t) {
                    uint64_t off = load_be64(&f[table + t * 8]) & 0x00fffffffffffe00ull;
                    for (uint64_t k = 0; off && k < cs * 8; ++k)
                        if (f[off + k / 8] & (1u << (k % 8)))
                            b.set_bits.insert(t * cs * 8 + k);
                }
                out.push_back(b);
                dir += (24 + extra + name_size + 7) / 8 * 8;
            }
        }
        p += 8 + (len + 7) / 8 * 8;
    }
    return out;
}

} // namespace kiln::block::test
