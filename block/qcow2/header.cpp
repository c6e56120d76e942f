#include "block/qcow2/header.h"

#include <cinttypes>
#include <cstdio>

#include "block/qcow2/format.h"

namespace kiln::block::qcow2 {

static std::string fmt(const char* format, auto... args)
{
    char buf[256];
    std::snprintf(buf, sizeof(buf), format, args...);
    return buf;
}

Result<Header> parse_fixed_header(std::span<const uint8_t> b)
{
    if (b.size() < k_v2_header_bytes || load_be32(b.data()) != k_magic)
        return Error::invalid("Image is not in qcow2 format");
    Header h;
    const uint8_t* p = b.data();
    h.version = load_be32(p + 4);
    if (h.version < 2 || h.version > 3)
        return Error::not_supported(fmt("Unsupported qcow2 version %u", h.version));
    h.backing_file_offset = load_be64(p + 8);
    h.backing_file_size = load_be32(p + 16);
    h.cluster_bits = load_be32(p + 20);
    h.size = load_be64(p + 24);
    h.crypt_method = load_be32(p + 32);
    h.l1_size = load_be32(p + 36);
    h.l1_table_offset = load_be64(p + 40);
    h.refcount_table_offset = load_be64(p + 48);
    h.refcount_table_clusters = load_be32(p + 56);
    h.nb_snapshots = load_be32(p + 60);
    h.snapshots_offset = load_be64(p + 64);
    if (h.cluster_bits < k_min_cluster_bits || h.cluster_bits > k_max_cluster_bits)
        return Error::invalid(fmt("Unsupported cluster size: 2^%u", h.cluster_bits));
    if (h.version == 2) {
        h.refcount_order = 4;
        h.header_length = k_v2_header_bytes;
        return h;
    }
    if (b.size() < k_v3_header_bytes)
        return Error::corrupt("qcow2 header too short");
    h.incompatible_features = load_be64(p + 72);
    h.compatible_features = load_be64(p + 80);
    h.autoclear_features = load_be64(p + 88);
    h.refcount_order = load_be32(p + 96);
    h.header_length = load_be32(p + 100);
    if (h.header_length < k_v3_header_bytes)
        return Error::corrupt("qcow2 header too short");
    if (h.header_length > h.cluster_size())
        return Error::corrupt("qcow2 header exceeds cluster size");
    if (h.header_length > k_v3_header_bytes && b.size() > 104)
        h.compression_type = p[104];
    return h;
}

static Result<void> check_table(uint64_t offset, uint64_t bytes, uint64_t cluster_size, uint64_t file_size,
                                const char* what)
{
    // QEMU's qcow2_validate_table message.
    if (offset % cluster_size || offset > k_max_image_bytes || bytes > k_max_image_bytes - offset)
        return Error::corrupt(fmt("%s offset invalid", what));
    // Tables must lie inside the file (a short final cluster is fine);
    // QEMU would read zeroes there.
    if (bytes && offset >= file_size)
        return Error::corrupt(fmt("%s lies past the end of the file", what));
    return ok();
}

static Result<void> parse_extensions(Header& h, std::span<const uint8_t> b)
{
    uint64_t end = std::min<uint64_t>(b.size(), h.cluster_size());
    if (h.backing_file_offset && h.backing_file_offset < end)
        end = h.backing_file_offset;
    uint64_t pos = h.header_length;
    while (pos + 8 <= end) {
        uint32_t type = load_be32(&b[pos]);
        uint32_t len = load_be32(&b[pos + 4]);
        pos += 8;
        if (type == k_ext_end)
            return ok();
        if (len > end - pos)
            return Error::corrupt(fmt("qcow2_read_extension: ERROR: pending more data than remaining in header "
                                      "(extension 0x%x, length %u)",
                                      type, len));
        const uint8_t* d = &b[pos];
        switch (type) {
        case k_ext_backing_format:
            if (len >= 16)
                return Error::corrupt(fmt("ERROR: ext_backing_format: len=%u too large (>=16)", len));
            h.backing_format.assign(reinterpret_cast<const char*>(d), len);
            break;
        case k_ext_feature_table:
            for (uint32_t i = 0; i + 48 <= len; i += 48) {
                FeatureName f;
                f.type = d[i];
                f.bit = d[i + 1];
                const char* name = reinterpret_cast<const char*>(d + i + 2);
                f.name.assign(name, strnlen(name, 46));
                h.feature_names.push_back(std::move(f));
            }
            break;
        case k_ext_data_file:
            h.data_file.assign(reinterpret_cast<const char*>(d), len);
            break;
        default:
            h.other_extensions.push_back({type, std::vector<uint8_t>(d, d + len)});
            break;
        }
        pos += align_up(len, 8);
    }
    // Running off the header cluster without an end marker: tolerated when
    // nothing follows (QEMU stops at the end of the buffer too).
    return ok();
}

Result<Header> parse_header(std::span<const uint8_t> b, uint64_t file_size)
{
    Header h = TRY(parse_fixed_header(b));
    uint64_t cs = h.cluster_size();
    if (h.refcount_order > 6)
        return Error::invalid("Reference count entry width too large; may not exceed 64 bits");
    if (h.size > k_max_image_bytes)
        return Error::invalid("Image is too big");
    if (h.backing_file_offset) {
        if (h.backing_file_size > k_max_backing_name_bytes || h.backing_file_offset > cs
            || h.backing_file_size > cs - h.backing_file_offset)
            return Error::corrupt("Backing file name too long");
        if (h.backing_file_offset + h.backing_file_size > b.size())
            return Error::corrupt("Invalid backing file offset");
        h.backing_file.assign(reinterpret_cast<const char*>(&b[h.backing_file_offset]), h.backing_file_size);
    }
    TRY(parse_extensions(h, b));
    if (uint64_t(h.refcount_table_clusters) * cs > k_max_refcount_table_bytes)
        return Error::invalid("Reference count table too large");
    if (h.refcount_table_clusters == 0)
        return Error::corrupt("Image does not contain a reference count table");
    TRY(check_table(h.refcount_table_offset, uint64_t(h.refcount_table_clusters) * cs, cs, file_size,
                    "Reference count table"));
    if (uint64_t(h.l1_size) * 8 > k_max_l1_bytes)
        return Error::invalid("Active L1 table too large");
    TRY(check_table(h.l1_table_offset, uint64_t(h.l1_size) * 8, cs, file_size, "Active L1 table"));
    if (h.nb_snapshots > k_max_snapshots)
        return Error::invalid("Snapshot table too large");
    if (h.nb_snapshots)
        TRY(check_table(h.snapshots_offset, uint64_t(h.nb_snapshots) * 40, cs, file_size, "Snapshot table"));
    // L1 must cover the virtual size.
    uint64_t entries_per_l2 = cs / ((h.incompatible_features & k_incompat_extended_l2) ? 16 : 8);
    uint64_t need_l1 = div_round_up(div_round_up(h.size, cs), entries_per_l2);
    if (need_l1 > h.l1_size)
        return Error::corrupt("L1 table is too small");
    return h;
}

std::vector<FeatureName> default_feature_names()
{
    return {
        {0, 0, "dirty bit"},          {0, 1, "corrupt bit"},     {0, 2, "external data file"},
        {0, 3, "compression type"},   {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
        {2, 0, "bitmaps"},            {2, 1, "raw external data"},
    };
}

std::string describe_incompatible(uint64_t mask, const std::vector<FeatureName>& names)
{
    std::string out;
    for (const auto& f : names) {
        if (f.type != 0 || f.bit >= 64 || !(mask & (1ull << f.bit)))
            continue;
        if (!out.empty())
            out += ", ";
        out += f.name;
        mask &= ~(1ull << f.bit);
    }
    if (mask) {
        if (!out.empty())
            out += ", ";
        out += fmt("Unknown incompatible feature: %" PRIx64, mask);
    }
    return out;
}

static void put_extension(std::vector<uint8_t>& out, uint32_t type, const uint8_t* data, size_t len)
{
    size_t at = out.size();
    out.resize(at + 8 + align_up(len, 8), 0);
    store_be32(&out[at], type);
    store_be32(&out[at + 4], uint32_t(len));
    if (len)
        std::memcpy(&out[at + 8], data, len);
}

static Result<std::vector<uint8_t>> serialize_header_with(Header& h, bool feature_table);

// The feature name table is informational: like QEMU, leave it out when a
// small cluster (512 bytes with a long backing file name) has no room.
Result<std::vector<uint8_t>> serialize_header(Header& h)
{
    auto with = serialize_header_with(h, true);
    if (with || h.version < 3)
        return with;
    return serialize_header_with(h, false);
}

static Result<std::vector<uint8_t>> serialize_header_with(Header& h, bool feature_table)
{
    std::vector<uint8_t> out(h.version >= 3 ? k_v3_header_written_bytes : k_v2_header_bytes, 0);
    if (h.version >= 3) {
        h.header_length = k_v3_header_written_bytes;
        if (h.backing_format.size())
            put_extension(out, k_ext_backing_format, reinterpret_cast<const uint8_t*>(h.backing_format.data()),
                          h.backing_format.size());
        if (h.data_file.size())
            put_extension(out, k_ext_data_file, reinterpret_cast<const uint8_t*>(h.data_file.data()),
                          h.data_file.size());
        if (h.feature_names.empty())
            h.feature_names = default_feature_names();
        std::vector<uint8_t> table(feature_table ? h.feature_names.size() * 48 : 0, 0);
        for (size_t i = 0; feature_table && i < h.feature_names.size(); ++i) {
            table[i * 48] = h.feature_names[i].type;
            table[i * 48 + 1] = h.feature_names[i].bit;
            std::memcpy(&table[i * 48 + 2], h.feature_names[i].name.data(),
                        std::min<size_t>(46, h.feature_names[i].name.size()));
        }
        if (feature_table)
            put_extension(out, k_ext_feature_table, table.data(), table.size());
    } else {
        h.header_length = k_v2_header_bytes;
        // v2 images only know the backing format extension.
        if (h.backing_format.size())
            put_extension(out, k_ext_backing_format, reinterpret_cast<const uint8_t*>(h.backing_format.data()),
                          h.backing_format.size());
    }
    for (const auto& ext : h.other_extensions)
        put_extension(out, ext.type, ext.data.data(), ext.data.size());
    put_extension(out, k_ext_end, nullptr, 0);
    if (h.backing_file.size() > k_max_backing_name_bytes)
        return Error::invalid("Backing file name too long");
    if (h.backing_file.empty()) {
        h.backing_file_offset = 0;
        h.backing_file_size = 0;
    } else {
        h.backing_file_offset = out.size();
        h.backing_file_size = uint32_t(h.backing_file.size());
        out.insert(out.end(), h.backing_file.begin(), h.backing_file.end());
    }
    if (out.size() > h.cluster_size())
        return Error::invalid("Cannot fit the qcow2 header and its extensions into one cluster");

    uint8_t* p = out.data();
    store_be32(p, k_magic);
    store_be32(p + 4, h.version);
    store_be64(p + 8, h.backing_file_offset);
    store_be32(p + 16, h.backing_file_size);
    store_be32(p + 20, h.cluster_bits);
    store_be64(p + 24, h.size);
    store_be32(p + 32, h.crypt_method);
    store_be32(p + 36, h.l1_size);
    store_be64(p + 40, h.l1_table_offset);
    store_be64(p + 48, h.refcount_table_offset);
    store_be32(p + 56, h.refcount_table_clusters);
    store_be32(p + 60, h.nb_snapshots);
    store_be64(p + 64, h.snapshots_offset);
    if (h.version >= 3) {
        store_be64(p + 72, h.incompatible_features);
        store_be64(p + 80, h.compatible_features);
        store_be64(p + 88, h.autoclear_features);
        store_be32(p + 96, h.refcount_order);
        store_be32(p + 100, h.header_length);
        p[104] = h.compression_type;
    }
    return out;
}

} // namespace kiln::block::qcow2
