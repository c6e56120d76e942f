// QEMU's block-dirty-bitmap-* operations on qcow2 persistent bitmaps (what
// qemu-img bitmap and convert --bitmaps use). They change the bitmaps in
// memory; store_bitmaps() (bitmaps.cpp) writes them on close, as QEMU
// stores its in-memory bitmaps when the image is closed. The checks and
// messages follow QEMU 7.2's (qmp block-dirty-bitmap-add, qcow2's "can
// store new dirty bitmap", bdrv_dirty_bitmap_check) in the same order.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

constexpr uint32_t k_max_bitmaps = 65535;                       // QCOW2_MAX_BITMAPS
constexpr uint64_t k_max_bitmap_dir_bytes = 1024ull * k_max_bitmaps; // QCOW2_MAX_BITMAP_DIRECTORY_SIZE
constexpr uint32_t k_max_bitmap_name = 1023;                    // BME_MAX_NAME_SIZE
constexpr uint64_t k_max_bitmap_phys_bytes = 512ull << 20;      // BME_MAX_PHYS_SIZE
constexpr uint64_t k_max_bitmap_table_entries = 0x8000000;      // BME_MAX_TABLE_SIZE
constexpr uint32_t k_min_granularity_bits = 9;
constexpr uint32_t k_max_granularity_bits = 31;

uint64_t dir_entry_bytes(uint64_t name_bytes, uint64_t extra_bytes) { return align_up(24 + name_bytes + extra_bytes, 8); }

Error not_found(const std::string& name) { return Error::not_found("Dirty bitmap '" + name + "' not found"); }

} // namespace

Error inconsistent_bitmap_error(const std::string& name)
{
    return Error::invalid("Bitmap '" + name
                          + "' is inconsistent and cannot be used\n"
                            "Try block-dirty-bitmap-remove to delete this bitmap from disk");
}

std::string Qcow2Node::bitmap_node_name() const
{
    // QEMU names anonymous nodes "#block" + a counter + two random digits;
    // the number means nothing to a user, only the form is kept.
    return "#block1" + std::to_string(10 + (reinterpret_cast<uintptr_t>(this) >> 6) % 90);
}

Result<void> Qcow2Node::check_no_bitmaps_for_snapshot_goto() const
{
    if (!m_bitmaps.empty())
        return Error(ErrorKind::Busy, "Device has active dirty bitmaps", EBUSY);
    return ok();
}

Bitmap* Qcow2Node::find_bitmap(const std::string& name)
{
    for (Bitmap& b : m_bitmaps)
        if (b.name == name)
            return &b;
    return nullptr;
}

std::vector<DirtyBitmapInfo> Qcow2Node::bitmaps() const
{
    std::vector<DirtyBitmapInfo> out;
    for (const Bitmap& b : m_bitmaps) {
        // In use on disk but not loaded by this session: inconsistent.
        bool inconsistent = (b.flags & k_bitmap_flag_in_use) && !b.loaded;
        out.push_back({b.name, 1ull << b.granularity_bits, bool(b.flags & k_bitmap_flag_auto), inconsistent});
    }
    return out;
}

Result<Bitmap*> Qcow2Node::bitmap_for_change(const std::string& name, bool allow_read_only)
{
    Bitmap* b = find_bitmap(name);
    if (!b)
        return not_found(name);
    if (!allow_read_only && read_only())
        return Error(ErrorKind::PermissionDenied, "Bitmap '" + name + "' is readonly and cannot be modified", EPERM);
    if ((b->flags & k_bitmap_flag_in_use) && !b->loaded)
        return inconsistent_bitmap_error(name);
    return b;
}

Result<void> Qcow2Node::bitmap_add(const std::string& name, std::optional<uint64_t> granularity_bytes, bool disabled)
{
    uint64_t granularity = granularity_bytes.value_or(std::clamp<uint64_t>(m_cluster_size, 4096, 65536));
    auto refuse = [&](const std::string& why) {
        return Error::invalid("Can't make bitmap '" + name + "' persistent in '" + bitmap_node_name() + "': " + why);
    };
    if (read_only())
        return Error(ErrorKind::PermissionDenied, "Bitmap '" + name + "' is readonly and cannot be modified", EPERM);
    if (!m_v3)
        return refuse("Cannot store dirty bitmaps in qcow2 v2 files");
    uint32_t bits = 0;
    while (bits < 63 && (1ull << bits) < granularity)
        ++bits;
    if (bits > k_max_granularity_bits)
        return refuse("Granularity exceeds maximum (" + std::to_string(1ull << k_max_granularity_bits) + " bytes)");
    if (bits < k_min_granularity_bits)
        return refuse("Granularity is under minimum (" + std::to_string(1ull << k_min_granularity_bits) + " bytes)");
    uint64_t bitmap_bytes = div_round_up(div_round_up(m_size, granularity), 8);
    if (bitmap_bytes > k_max_bitmap_phys_bytes || bitmap_bytes > k_max_bitmap_table_entries * m_cluster_size)
        return refuse("Too much space will be occupied by the bitmap. Use larger granularity");
    if (name.size() > k_max_bitmap_name)
        return refuse("Name length exceeds maximum (" + std::to_string(k_max_bitmap_name) + " characters)");
    if (!m_bitmaps.empty()) {
        if (m_bitmaps.size() >= k_max_bitmaps)
            return refuse("Maximum number of persistent bitmaps is already reached");
        uint64_t dir_bytes = 0;
        for (const Bitmap& b : m_bitmaps)
            dir_bytes += dir_entry_bytes(b.name.size(), b.extra.size());
        if (dir_bytes + dir_entry_bytes(name.size(), 0) > k_max_bitmap_dir_bytes)
            return refuse("Not enough space in the bitmap directory");
    }
    if (find_bitmap(name))
        return Error(ErrorKind::InvalidArgument, "Bitmap already exists: " + name, EEXIST);
    Bitmap b;
    b.name = name;
    b.granularity_bits = uint8_t(bits);
    b.flags = disabled ? 0 : k_bitmap_flag_auto;
    b.table_size = uint32_t(bitmap_table_entries(bits));
    b.table_offset = 0;
    b.bits.assign(uint64_t(b.table_size) * m_cluster_size, 0);
    b.loaded = true;
    b.changed = true;
    b.on_disk = false;
    m_bitmaps.push_back(std::move(b));
    m_bitmaps_edited = true;
    return ok();
}

Result<void> Qcow2Node::bitmap_remove(const std::string& name)
{
    auto it = std::find_if(m_bitmaps.begin(), m_bitmaps.end(), [&](const Bitmap& b) { return b.name == name; });
    if (it == m_bitmaps.end())
        return not_found(name);
    if (read_only())
        return Error(ErrorKind::PermissionDenied, "Bitmap '" + name + "' is readonly and cannot be modified", EPERM);
    if (it->on_disk)
        m_removed_bitmaps.push_back(*it);
    m_bitmaps.erase(it);
    m_bitmaps_edited = true;
    return ok();
}

Result<void> Qcow2Node::bitmap_clear(const std::string& name)
{
    Bitmap* b = TRY(bitmap_for_change(name, false));
    std::fill(b->bits.begin(), b->bits.end(), 0);
    b->changed = true;
    return ok();
}

Result<void> Qcow2Node::bitmap_enable(const std::string& name, bool enabled)
{
    Bitmap* b = TRY(bitmap_for_change(name, true));
    uint32_t flags = enabled ? b->flags | k_bitmap_flag_auto : b->flags & ~k_bitmap_flag_auto;
    if (flags != b->flags) {
        b->flags = flags;
        m_bitmaps_edited = true;
    }
    return ok();
}

Task<Result<DirtyBits>> Qcow2Node::bitmap_bits(const std::string& name)
{
    Bitmap* b = find_bitmap(name);
    if (!b)
        co_return not_found(name);
    if ((b->flags & k_bitmap_flag_in_use) && !b->loaded)
        co_return inconsistent_bitmap_error(name);
    DirtyBits out;
    out.granularity_bytes = 1ull << b->granularity_bits;
    out.disk_bytes = m_size;
    if (b->loaded)
        out.bits = b->bits;
    else
        out.bits = CO_TRY(co_await read_bitmap_bits(*b));
    out.bits.resize(std::min<uint64_t>(out.bits.size(), div_round_up(out.chunks(), 8)));
    co_return out;
}

Result<void> Qcow2Node::bitmap_merge(const std::string& target, const DirtyBits& source)
{
    Bitmap* b = TRY(bitmap_for_change(target, false));
    DirtyBits dst;
    dst.granularity_bytes = 1ull << b->granularity_bits;
    dst.disk_bytes = m_size;
    dst.bits = std::move(b->bits);
    dst.merge(source);
    b->bits = std::move(dst.bits);
    b->changed = true;
    return ok();
}

} // namespace kiln::block::qcow2
