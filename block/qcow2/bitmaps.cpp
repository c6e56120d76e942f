// Persistent dirty bitmaps (header extension 0x23852875, qcow2.rst
// "Bitmaps extension"), kept intact as QEMU keeps them:
//
// - The extension counts only while autoclear bit 0 is set; otherwise its
//   data is stale (a program without bitmap support wrote the image) and
//   is dropped on the next header rewrite, its clusters becoming leaks.
// - A read-write open loads every consistent bitmap into memory and marks
//   it in use on disk; guest writes, zero writes and discards set the
//   bits of enabled ("auto") bitmaps; resize resizes them; a clean close
//   writes changed bitmaps to fresh clusters, then a fresh directory with
//   the in-use flags cleared, then frees the old clusters. A crash leaves
//   them in use, i.e. inconsistent, which QEMU reports and never trusts.
// - check counts the directory, tables and data clusters as references.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

constexpr uint64_t k_bitmap_ext_bytes = 24;
constexpr uint32_t k_bitmap_entry_fixed = 24;
constexpr uint64_t k_max_bitmaps = 65535;                        // QCOW2_MAX_BITMAPS
constexpr uint64_t k_max_bitmap_dir_bytes = 1024 * k_max_bitmaps; // QCOW2_MAX_BITMAP_DIRECTORY_SIZE
constexpr uint32_t k_max_bitmap_name = 1023;
constexpr uint64_t k_max_bitmap_table_entries = 0x8000000;
constexpr uint64_t k_bitmap_table_reserved = 0xff000000000001feull;
constexpr uint32_t k_bitmap_known_flags = k_bitmap_flag_in_use | k_bitmap_flag_auto;
// BME_MAX_PHYS_SIZE: the most a bitmap may take in the file, and so in
// memory, since Kiln holds loaded bitmaps whole.
constexpr uint64_t k_max_bitmap_bytes = 512ull << 20;

// Open fails on a damaged directory with QEMU's messages (it refuses such
// images too, read-only or not).
Error bad(const std::string& why) { return Error::invalid(why); }

} // namespace

uint64_t Qcow2Node::bitmap_table_entries(uint32_t granularity_bits) const
{
    uint64_t bits = div_round_up(m_size, 1ull << granularity_bits);
    return div_round_up(bits, m_cluster_size * 8);
}

Result<void> Qcow2Node::parse_bitmaps(std::span<const uint8_t> dir, uint32_t count)
{
    size_t pos = 0;
    uint32_t found = 0;
    auto broken = [] { return bad("Broken bitmap directory"); };
    while (pos < dir.size()) {
        if (dir.size() - pos < k_bitmap_entry_fixed)
            return broken();
        if (++found > count)
            return bad("More bitmaps found than specified in header extension");
        const uint8_t* p = dir.data() + pos;
        Bitmap b;
        b.table_offset = load_be64(p);
        b.table_size = load_be32(p + 8);
        b.flags = load_be32(p + 12);
        b.type = p[16];
        b.granularity_bits = p[17];
        uint32_t name_size = load_be16(p + 18);
        uint32_t extra = load_be32(p + 20);
        uint64_t total = align_up(k_bitmap_entry_fixed + uint64_t(extra) + name_size, 8);
        if (extra != 0)
            return bad("Bitmap extra data is not supported");
        if (dir.size() - pos < total)
            return broken();
        b.name.assign(reinterpret_cast<const char*>(p + k_bitmap_entry_fixed), name_size);
        uint64_t phys_bytes = uint64_t(b.table_size) * m_cluster_size;
        bool fits = b.table_size != 0 && b.table_offset != 0 && !(b.table_offset & (m_cluster_size - 1))
            && b.table_size <= k_max_bitmap_table_entries && b.granularity_bits >= 9 && b.granularity_bits <= 31
            && !(b.flags & ~k_bitmap_known_flags) && name_size <= k_max_bitmap_name && name_size != 0 && b.type == 1
            && phys_bytes <= k_max_bitmap_bytes
            // A consistent bitmap must cover the disk.
            && ((b.flags & k_bitmap_flag_in_use) || m_size <= ((phys_bytes * 8) << b.granularity_bits));
        if (!fits)
            return bad("Bitmap '" + b.name + "' doesn't satisfy the constraints");
        m_bitmaps.push_back(std::move(b));
        pos += total;
    }
    if (found != count)
        return bad("Less bitmaps found than specified in header extension");
    return ok();
}

Task<Result<void>> Qcow2Node::load_bitmaps()
{
    m_bitmaps.clear();
    m_bitmap_ext.reset();
    const RawExtension* ext = nullptr;
    for (const auto& e : m_header.other_extensions)
        if (e.type == k_ext_bitmaps)
            ext = &e;
    if (!ext)
        co_return ok();
    if (ext->data.size() != k_bitmap_ext_bytes)
        co_return bad("bitmaps_ext: Invalid extension length");
    if (!(m_header.autoclear_features & k_autoclear_bitmaps))
        co_return ok(); // stale: dropped on rewrite
    const uint8_t* d = ext->data.data();
    BitmapExt be{load_be32(d), load_be64(d + 8), load_be64(d + 16)};
    if (load_be32(d + 4) != 0)
        co_return bad("bitmaps_ext: Reserved field is not zero");
    if (be.count > k_max_bitmaps)
        co_return bad("bitmaps_ext: Image has " + std::to_string(be.count)
                      + " bitmaps, exceeding the QEMU supported maximum of " + std::to_string(k_max_bitmaps));
    if (be.count == 0)
        co_return bad("found bitmaps extension with zero bitmaps");
    if (be.dir_offset & (m_cluster_size - 1))
        co_return bad("bitmaps_ext: invalid bitmap directory offset");
    if (be.dir_bytes > k_max_bitmap_dir_bytes)
        co_return bad("bitmaps_ext: bitmap directory size (" + std::to_string(be.dir_bytes)
                      + ") exceeds the maximum supported size (" + std::to_string(k_max_bitmap_dir_bytes) + ")");
    if (be.dir_bytes == 0)
        co_return bad("Requested bitmap directory size is zero");
    // Past the end of the file reads as zeroes, as in QEMU.
    std::vector<uint8_t> dir(be.dir_bytes);
    CO_TRY(co_await read_clamped(*m_file, be.dir_offset, dir.data(), dir.size()));
    CO_TRY(parse_bitmaps(dir, be.count));
    // QEMU reads every consistent bitmap at open: a bad table refuses the
    // image whether it is opened for writing or not.
    for (const Bitmap& b : m_bitmaps) {
        if (b.flags & k_bitmap_flag_in_use)
            continue;
        if (b.table_size != bitmap_table_entries(b.granularity_bits))
            co_return bad("Could not read bitmap '" + b.name + "' from image: Invalid argument");
        CO_TRY(co_await read_bitmap_table(b));
    }
    m_bitmap_ext = be;
    co_return ok();
}

Task<Result<std::vector<uint64_t>>> Qcow2Node::read_bitmap_table(const Bitmap& b)
{
    std::vector<uint8_t> raw(uint64_t(b.table_size) * 8);
    CO_TRY(co_await read_clamped(*m_file, b.table_offset, raw.data(), raw.size()));
    std::vector<uint64_t> table(b.table_size);
    for (size_t i = 0; i < table.size(); ++i) {
        table[i] = load_be64(&raw[i * 8]);
        uint64_t off = table[i] & k_l1e_offset_mask;
        if ((table[i] & k_bitmap_table_reserved) || (off && (table[i] & 1)) || (off & (m_cluster_size - 1)))
            co_return bad("Could not read bitmap_table table from image for bitmap '" + b.name
                          + "': Invalid argument");
    }
    co_return table;
}

Task<Result<std::vector<uint64_t>>> Qcow2Node::bitmap_clusters()
{
    std::vector<uint64_t> out;
    if (!m_bitmap_ext)
        co_return out;
    auto add = [&](uint64_t off, uint64_t bytes) {
        for (uint64_t c = off >> m_cluster_bits; c <= (off + bytes - 1) >> m_cluster_bits; ++c)
            out.push_back(c);
    };
    add(m_bitmap_ext->dir_offset, m_bitmap_ext->dir_bytes);
    for (const Bitmap& b : m_bitmaps) {
        if (b.table_size == 0)
            continue;
        add(b.table_offset, uint64_t(b.table_size) * 8);
        for (uint64_t e : CO_TRY(co_await read_bitmap_table(b)))
            if (e & k_l1e_offset_mask)
                out.push_back((e & k_l1e_offset_mask) >> m_cluster_bits);
    }
    co_return out;
}

Task<Result<std::vector<uint8_t>>> Qcow2Node::read_bitmap_bits(const Bitmap& b)
{
    uint64_t bytes = uint64_t(b.table_size) * m_cluster_size;
    if (bytes > k_max_bitmap_bytes)
        co_return Error::not_supported("qcow2: bitmap '" + b.name + "' is too large to load");
    std::vector<uint8_t> bits(bytes, 0);
    std::vector<uint64_t> table = CO_TRY(co_await read_bitmap_table(b));
    for (size_t i = 0; i < table.size(); ++i) {
        uint8_t* chunk = bits.data() + i * m_cluster_size;
        if (uint64_t off = table[i] & k_l1e_offset_mask)
            CO_TRY(co_await read_clamped(*m_file, off, chunk, m_cluster_size));
        else if (table[i] & 1)
            std::memset(chunk, 0xff, m_cluster_size);
    }
    co_return bits;
}

Task<Result<std::vector<uint64_t>>> Qcow2Node::stored_bitmap_clusters(const Bitmap& b)
{
    std::vector<uint64_t> out;
    if (!b.on_disk || b.table_size == 0)
        co_return out;
    for (uint64_t c = 0; c < div_round_up(uint64_t(b.table_size) * 8, m_cluster_size); ++c)
        out.push_back((b.table_offset >> m_cluster_bits) + c);
    for (uint64_t e : CO_TRY(co_await read_bitmap_table(b)))
        if (e & k_l1e_offset_mask)
            out.push_back((e & k_l1e_offset_mask) >> m_cluster_bits);
    co_return out;
}

Task<Result<void>> Qcow2Node::start_bitmap_tracking()
{
    if (!m_bitmap_ext || read_only())
        co_return ok();
    for (Bitmap& b : m_bitmaps) {
        if (b.flags & k_bitmap_flag_in_use)
            continue; // inconsistent already: kept as it is, never trusted
        b.bits = CO_TRY(co_await read_bitmap_bits(b));
        b.loaded = true;
        b.flags |= k_bitmap_flag_in_use;
    }
    // In use from now on until a clean close stores them (QEMU does the
    // same, in place). A directory a damaged image places over the header,
    // L1 or refcount table is not written there.
    auto overlaps = [&](uint64_t off, uint64_t bytes) {
        return m_bitmap_ext->dir_offset < off + bytes && off < m_bitmap_ext->dir_offset + m_bitmap_ext->dir_bytes;
    };
    if (overlaps(0, m_cluster_size) || overlaps(m_l1_offset, m_l1.size() * 8)
        || overlaps(m_header.refcount_table_offset, uint64_t(m_header.refcount_table_clusters) * m_cluster_size))
        co_return Error::corrupt("Can't update bitmap directory: it overlaps other qcow2 metadata");
    std::vector<uint8_t> dir = serialize_bitmap_directory();
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await m_file->pwritev(m_bitmap_ext->dir_offset, QIov(dir.data(), dir.size()), RequestFlags::None));
    note_write();
    CO_TRY(co_await flush_covering(m_write_seq));
    co_return ok();
}

std::vector<uint8_t> Qcow2Node::serialize_bitmap_directory() const
{
    std::vector<uint8_t> out;
    for (const Bitmap& b : m_bitmaps) {
        size_t at = out.size();
        out.resize(at + align_up(k_bitmap_entry_fixed + b.extra.size() + b.name.size(), 8), 0);
        uint8_t* p = &out[at];
        store_be64(p, b.table_offset);
        store_be32(p + 8, b.table_size);
        store_be32(p + 12, b.flags);
        p[16] = b.type;
        p[17] = b.granularity_bits;
        store_be16(p + 18, uint16_t(b.name.size()));
        store_be32(p + 20, uint32_t(b.extra.size()));
        std::memcpy(p + k_bitmap_entry_fixed, b.extra.data(), b.extra.size());
        std::memcpy(p + k_bitmap_entry_fixed + b.extra.size(), b.name.data(), b.name.size());
    }
    return out;
}

void Qcow2Node::note_guest_write(uint64_t offset, uint64_t bytes)
{
    if (bytes == 0 || offset >= m_size)
        return;
    bytes = std::min(bytes, m_size - offset);
    for (Bitmap& b : m_bitmaps) {
        if (!b.loaded || !(b.flags & k_bitmap_flag_auto))
            continue;
        uint64_t first = offset >> b.granularity_bits, last = (offset + bytes - 1) >> b.granularity_bits;
        for (uint64_t bit = first; bit <= last; ++bit)
            b.bits[bit / 8] |= uint8_t(1u << (bit % 8));
        b.changed = true;
    }
}

void Qcow2Node::resize_bitmaps()
{
    for (Bitmap& b : m_bitmaps) {
        if (!b.loaded)
            continue;
        uint32_t entries = uint32_t(bitmap_table_entries(b.granularity_bits));
        uint64_t bits = div_round_up(m_size, 1ull << b.granularity_bits);
        b.bits.resize(uint64_t(entries) * m_cluster_size, 0);
        // Bits past the new end are clear, so a later grow starts clean.
        for (uint64_t bit = bits; bit < b.bits.size() * 8; ++bit) {
            if (bit % 8 == 0) {
                std::fill(b.bits.begin() + long(bit / 8), b.bits.end(), 0);
                break;
            }
            b.bits[bit / 8] &= uint8_t(~(1u << (bit % 8)));
        }
        b.changed = true;
    }
}

Result<void> Qcow2Node::check_bitmaps_resizable() const
{
    for (const Bitmap& b : m_bitmaps)
        if (!b.loaded)
            return inconsistent_bitmap_error(b.name);
    return ok();
}

Task<Result<void>> Qcow2Node::store_bitmaps()
{
    auto io_bytes = [this](uint64_t bytes, uint64_t buffer_bytes) {
        return std::min(buffer_bytes, align_up(bytes, std::max<uint64_t>(512, m_file->request_alignment())));
    };
    if (read_only() || !m_v3)
        co_return ok();
    bool any = m_bitmaps_edited || !m_removed_bitmaps.empty();
    for (const Bitmap& b : m_bitmaps)
        any |= b.loaded;
    if (!any)
        co_return ok();
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    // Old clusters go only after the directory that no longer points at
    // them is on disk; a crash before that leaks them, nothing worse.
    std::vector<uint64_t> old_clusters;
    for (const Bitmap& b : m_removed_bitmaps) {
        auto used = co_await stored_bitmap_clusters(b);
        if (used) // a damaged table cannot be freed: its clusters leak
            old_clusters.insert(old_clusters.end(), used->begin(), used->end());
    }
    // Stored bitmaps keep their places; new ones follow, newest first, as
    // QEMU (which keeps its bitmaps newest first) appends them.
    std::vector<Bitmap> next;
    for (const Bitmap& b : m_bitmaps)
        if (b.on_disk)
            next.push_back(b);
    for (auto it = m_bitmaps.rbegin(); it != m_bitmaps.rend(); ++it)
        if (!it->on_disk)
            next.push_back(*it);
    for (Bitmap& b : next) {
        if (!b.loaded)
            continue; // inconsistent: kept byte for byte
        b.flags &= ~k_bitmap_flag_in_use;
        if (!b.changed && b.on_disk && b.table_size == bitmap_table_entries(b.granularity_bits))
            continue;
        // Fresh data clusters and a fresh table.
        for (uint64_t c : CO_TRY(co_await stored_bitmap_clusters(b)))
            old_clusters.push_back(c);
        b.table_size = uint32_t(bitmap_table_entries(b.granularity_bits));
        std::vector<uint8_t> table(align_up(std::max<uint64_t>(uint64_t(b.table_size) * 8, 1), m_cluster_size), 0);
        for (uint32_t i = 0; i < b.table_size; ++i) {
            const uint8_t* chunk = b.bits.data() + uint64_t(i) * m_cluster_size;
            if (std::all_of(chunk, chunk + m_cluster_size, [](uint8_t x) { return x == 0; }))
                continue;
            uint64_t off = CO_TRY(co_await alloc_clusters(1));
            CO_TRY(co_await m_file->pwritev(off, QIov(const_cast<uint8_t*>(chunk), m_cluster_size),
                                            RequestFlags::None));
            note_write();
            store_be64(&table[uint64_t(i) * 8], off);
        }
        b.table_offset = CO_TRY(co_await alloc_clusters(table.size() / m_cluster_size));
        // Only the sectors that hold entries: the rest of the cluster stays
        // a hole, as QEMU leaves it.
        CO_TRY(co_await m_file->pwritev(b.table_offset, QIov(table.data(), io_bytes(uint64_t(b.table_size) * 8, table.size())),
                                        RequestFlags::None));
        note_write();
        b.changed = false;
        b.on_disk = true;
    }
    std::swap(m_bitmaps, next);
    if (m_bitmap_ext)
        for (uint64_t c = m_bitmap_ext->dir_offset >> m_cluster_bits;
             c <= (m_bitmap_ext->dir_offset + m_bitmap_ext->dir_bytes - 1) >> m_cluster_bits; ++c)
            old_clusters.push_back(c);
    if (m_bitmaps.empty()) {
        m_bitmap_ext.reset(); // the extension goes, and autoclear bit 0 with it
    } else {
        std::vector<uint8_t> dir = serialize_bitmap_directory();
        uint64_t dir_bytes = dir.size();
        dir.resize(align_up(dir.size(), m_cluster_size), 0);
        uint64_t dir_off = CO_TRY(co_await alloc_clusters(dir.size() / m_cluster_size));
        CO_TRY(co_await m_file->pwritev(dir_off, QIov(dir.data(), io_bytes(dir_bytes, dir.size())), RequestFlags::None));
        note_write();
        m_bitmap_ext = BitmapExt{uint32_t(m_bitmaps.size()), dir_bytes, dir_off};
    }
    CO_TRY(co_await order_after_refcounts());
    write_bitmap_extension();
    CO_TRY(co_await write_header());
    CO_TRY(co_await flush_covering(m_write_seq));
    std::vector<uint64_t> freed;
    CO_TRY(co_await apply_refcount_delta(std::move(old_clusters), -1, &freed));
    co_await discard_freed(freed);
    for (Bitmap& b : m_bitmaps)
        b.loaded = false;
    m_removed_bitmaps.clear();
    m_bitmaps_edited = false;
    co_return ok();
}

void Qcow2Node::write_bitmap_extension()
{
    auto& exts = m_header.other_extensions;
    exts.erase(std::remove_if(exts.begin(), exts.end(), [](const RawExtension& e) { return e.type == k_ext_bitmaps; }),
               exts.end());
    if (!m_bitmap_ext || m_bitmaps.empty()) {
        m_header.autoclear_features &= ~k_autoclear_bitmaps;
        return;
    }
    RawExtension e;
    e.type = k_ext_bitmaps;
    e.data.assign(k_bitmap_ext_bytes, 0);
    store_be32(e.data.data(), m_bitmap_ext->count);
    store_be64(e.data.data() + 8, m_bitmap_ext->dir_bytes);
    store_be64(e.data.data() + 16, m_bitmap_ext->dir_offset);
    exts.push_back(std::move(e));
    m_header.autoclear_features |= k_autoclear_bitmaps;
}

nlohmann::json Qcow2Node::bitmaps_info() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const Bitmap& b : m_bitmaps) {
        nlohmann::json flags = nlohmann::json::array();
        if (b.flags & k_bitmap_flag_in_use)
            flags.push_back("in-use");
        if (b.flags & k_bitmap_flag_auto)
            flags.push_back("auto");
        list.push_back({{"flags", flags}, {"name", b.name}, {"granularity", 1ull << b.granularity_bits}});
    }
    return list;
}

} // namespace kiln::block::qcow2
