// qcow2 driver entry points: probe, open (header, tables, backing chain),
// header rewrite, info, close, and the FormatDriver record.
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/create.h"
#include "block/qcow2/qcow2_node.h"
#include "block/registry.h"

namespace kiln::block::qcow2 {

static constexpr uint64_t k_default_l2_cache_max_bytes = 32ull << 20; // QEMU on Linux
static constexpr uint64_t k_min_refcount_cache_clusters = 4;
static constexpr uint64_t k_min_l2_cache_tables = 2;

Result<CacheSizes> resolve_cache_sizes(const OptionList& options, uint64_t virtual_size, uint32_t cluster_bits)
{
    uint64_t cs = 1ull << cluster_bits;
    auto combined = TRY(options.get_size("cache-size"));
    auto l2 = TRY(options.get_size("l2-cache-size"));
    auto rc = TRY(options.get_size("refcount-cache-size"));
    options.consume("cache-size");
    options.consume("l2-cache-size");
    options.consume("refcount-cache-size");
    // Enough L2 cache to map the whole disk.
    uint64_t max_l2 = align_up(div_round_up(virtual_size, cs) * 8, cs);
    uint64_t min_rc = k_min_refcount_cache_clusters * cs;
    CacheSizes out;
    if (combined) {
        if (l2 && rc)
            return Error::invalid("l2-cache-size, refcount-cache-size, and cache-size may not be set at the same time");
        if (l2 && *l2 > *combined)
            return Error::invalid("l2-cache-size may not exceed cache-size");
        if (rc && *rc > *combined)
            return Error::invalid("refcount-cache-size may not exceed cache-size");
        if (l2) {
            out.l2_bytes = *l2;
            out.refcount_bytes = *combined - *l2;
        } else if (rc) {
            out.refcount_bytes = *rc;
            out.l2_bytes = *combined - *rc;
        } else {
            out.l2_bytes = std::min(*combined, max_l2);
            out.refcount_bytes = std::max(*combined - out.l2_bytes, min_rc);
        }
    } else {
        out.l2_bytes = l2 ? *l2 : std::min(max_l2, k_default_l2_cache_max_bytes);
        out.refcount_bytes = rc ? *rc : min_rc;
    }
    out.l2_bytes = std::max(out.l2_bytes, k_min_l2_cache_tables * cs);
    out.refcount_bytes = std::max(out.refcount_bytes, min_rc);
    return out;
}

Qcow2Node::Qcow2Node(BlockContext& ctx, std::unique_ptr<BlockNode> file) : BlockNode(ctx), m_meta_lock(ctx.loop())
{
    m_file = std::move(file);
}

Task<Result<std::unique_ptr<BlockNode>>> Qcow2Node::open(BlockContext& ctx, std::unique_ptr<BlockNode> file,
                                                         const ImageSpec& spec)
{
    auto node = std::make_unique<Qcow2Node>(ctx, std::move(file));
    CO_TRY(co_await node->load(spec));
    co_return std::unique_ptr<BlockNode>(std::move(node));
}

Task<Result<void>> Qcow2Node::load(const ImageSpec& spec)
{
    uint64_t file_size = m_file->size_bytes();
    std::vector<uint8_t> first(std::min<uint64_t>(file_size, 4096));
    CO_TRY(co_await read_clamped(*m_file, 0, first.data(), first.size()));
    Header fixed = CO_TRY(parse_fixed_header(first));
    std::vector<uint8_t> cluster0(std::min<uint64_t>(file_size, fixed.cluster_size()));
    CO_TRY(co_await read_clamped(*m_file, 0, cluster0.data(), cluster0.size()));
    m_header = CO_TRY(parse_header(cluster0, file_size));
    Header& h = m_header;

    if (h.crypt_method > 2)
        co_return Error::invalid("Unsupported encryption method: " + std::to_string(h.crypt_method));
    uint64_t unknown = h.incompatible_features & ~k_incompat_known;
    if (unknown)
        co_return Error::not_supported("Unsupported qcow2 feature(s): " + describe_incompatible(unknown, h.feature_names));
    if ((h.incompatible_features & k_incompat_data_file) && spec.flags.read_write)
        co_return Error::not_supported("qcow2: writing to images with an external data file is not supported yet");
    if ((h.incompatible_features & k_incompat_extended_l2) && spec.flags.read_write)
        co_return Error::not_supported("qcow2: writing to images with extended L2 entries is not supported yet");
    if (h.compression_type > k_compression_zstd)
        co_return Error::not_supported("qcow2: unknown compression type: " + std::to_string(h.compression_type));
    if (h.compression_type != k_compression_zlib && !(h.incompatible_features & k_incompat_compression))
        co_return Error::corrupt("qcow2: Compression type incompatible feature bit must be set");
    if (h.compression_type == k_compression_zlib && (h.incompatible_features & k_incompat_compression))
        co_return Error::corrupt("qcow2: Compression type incompatible feature bit must not be set");
    if (spec.flags.read_write && (h.incompatible_features & k_incompat_corrupt))
        co_return Error{ErrorKind::PermissionDenied, "qcow2: Image is corrupt; cannot be opened read/write", EACCES};
    set_read_only(!spec.flags.read_write);

    m_v3 = h.version >= 3;
    m_size = h.size;
    m_cluster_bits = h.cluster_bits;
    m_cluster_size = 1ull << m_cluster_bits;
    m_ext_l2 = h.incompatible_features & k_incompat_extended_l2;
    m_l2_entry_bytes = m_ext_l2 ? 16 : 8;
    m_l2_bits = m_cluster_bits - (m_ext_l2 ? 4 : 3);
    m_l2_entries = 1ull << m_l2_bits;
    m_compressed_shift = 62 - (m_cluster_bits - 8);
    m_compressed_mask = (1ull << (m_cluster_bits - 8)) - 1;
    m_compressed_offset_mask = (1ull << m_compressed_shift) - 1;

    CacheSizes cache = CO_TRY(resolve_cache_sizes(spec.options, m_size, m_cluster_bits));
    m_l2_cache = std::make_unique<TableCache>(context().loop(), *m_file, uint32_t(m_cluster_size),
                                              cache.l2_bytes / m_cluster_size);
    m_refcount_cache = std::make_unique<TableCache>(context().loop(), *m_file, uint32_t(m_cluster_size),
                                                    cache.refcount_bytes / m_cluster_size);

    std::vector<uint8_t> raw(uint64_t(h.l1_size) * 8);
    CO_TRY(co_await read_clamped(*m_file, h.l1_table_offset, raw.data(), raw.size()));
    m_l1.resize(h.l1_size);
    for (size_t i = 0; i < m_l1.size(); ++i)
        m_l1[i] = load_be64(&raw[i * 8]);
    m_l1_offset = h.l1_table_offset;

    raw.assign(uint64_t(h.refcount_table_clusters) * m_cluster_size, 0);
    CO_TRY(co_await read_clamped(*m_file, h.refcount_table_offset, raw.data(), raw.size()));
    m_reftable.resize(raw.size() / 8);
    for (size_t i = 0; i < m_reftable.size(); ++i)
        m_reftable[i] = load_be64(&raw[i * 8]);

    CO_TRY(co_await load_snapshots());
    CO_TRY(co_await load_bitmaps());
    if (h.crypt_method != 0)
        CO_TRY(co_await open_encryption(spec));

    if (h.incompatible_features & k_incompat_data_file) {
        if (h.data_file.empty())
            co_return Error::invalid("'data-file' is required for this image");
        // QEMU opens the recorded name as it is (relative to the current
        // directory, unlike backing files).
        std::string path = h.data_file;
        OpenFlags flags = spec.flags;
        flags.read_write = false;
        auto data = co_await context().open_file(path, spec.options.subtree("data-file"), flags);
        if (!data)
            co_return Error(data.error().kind(), "Could not open data file: " + data.error().message(),
                            data.error().errno_value());
        m_data_file = std::move(data).value();
    }

    if (!h.backing_file.empty() && !spec.flags.no_backing)
        CO_TRY(co_await open_backing(spec));

    if (!read_only()) {
        bool rewrite = false;
        if (h.incompatible_features & k_incompat_dirty) {
            // Refcounts may be stale (lazy_refcounts): rebuild them first.
            CheckResult r = CO_TRY(co_await check(CheckFix::All));
            (void)r;
            h.incompatible_features &= ~k_incompat_dirty;
            rewrite = true;
        }
        // Autoclear bits Kiln does not maintain are cleared (by the spec
        // that marks their structures stale); a bitmaps extension that is
        // already stale is dropped.
        uint64_t keep = k_autoclear_data_file_raw | (m_bitmap_ext ? k_autoclear_bitmaps : 0);
        bool stale_bitmaps = !m_bitmap_ext
            && std::any_of(h.other_extensions.begin(), h.other_extensions.end(),
                           [](const RawExtension& e) { return e.type == k_ext_bitmaps; });
        if ((h.autoclear_features & ~keep) || stale_bitmaps) {
            h.autoclear_features &= keep;
            if (stale_bitmaps)
                write_bitmap_extension();
            rewrite = true;
        }
        if (rewrite) {
            CO_TRY(co_await write_header());
            CO_TRY(co_await m_file->flush());
        }
        CO_TRY(co_await start_bitmap_tracking());
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::open_backing(const ImageSpec& spec)
{
    ImageSpec b;
    b.filename = block::resolve_backing_path(spec.filename.empty() ? filename() : spec.filename, m_header.backing_file);
    b.format = m_header.backing_format;
    b.options = spec.options.subtree("backing");
    b.flags = spec.flags;
    b.flags.read_write = false;
    if (spec.flags.backing_cache) {
        b.flags.cache = *spec.flags.backing_cache;
        b.flags.backing_cache.reset();
    }
    auto r = co_await context().open_image(b);
    if (!r)
        co_return Error(r.error().kind(), "Could not open backing file: " + r.error().message(),
                        r.error().errno_value());
    m_backing = std::move(r).value();
    co_return ok();
}

Task<Result<void>> Qcow2Node::write_header()
{
    std::vector<uint8_t> bytes = CO_TRY(serialize_header(m_header));
    uint64_t align = std::max<uint64_t>(512, m_file->request_alignment());
    bytes.resize(std::min<uint64_t>(align_up(bytes.size(), align), m_cluster_size), 0);
    // The header may point at a new L1 or refcount table.
    CO_TRY(co_await order_after_refcounts());
    CO_TRY(co_await m_file->pwritev(0, QIov(bytes.data(), bytes.size()), RequestFlags::None));
    note_write();
    co_return ok();
}

Task<Result<void>> Qcow2Node::set_backing(const std::string& name, const std::string& format)
{
    auto guard = co_await co_lock(m_meta_lock);
    Header saved = m_header;
    m_header.backing_file = name;
    m_header.backing_format = format;
    auto r = co_await write_header();
    if (!r) {
        m_header = saved;
        co_return std::move(r).error();
    }
    CO_TRY(co_await m_file->flush());
    co_return ok();
}

Task<Result<void>> Qcow2Node::close()
{
    if (!m_closed && !read_only() && m_file) {
        auto stored = co_await store_bitmaps(); // allocates: before the last commit
        {
            auto guard = co_await co_lock(m_meta_lock);
            auto committed = co_await commit_metadata();
            if (!committed) {
                m_closed = true;
                (void)co_await BlockNode::close();
                co_return committed;
            }
        }
        (void)co_await m_file->flush();
        CO_TRY(co_await mark_clean_on_close());
        CO_TRY(std::move(stored));
    }
    m_closed = true;
    co_return co_await BlockNode::close();
}

nlohmann::json Qcow2Node::format_specific_info() const
{
    nlohmann::json data;
    data["compat"] = m_v3 ? "1.1" : "0.10";
    data["compression-type"] = m_header.compression_type == k_compression_zstd ? "zstd" : "zlib";
    if (m_v3)
        data["lazy-refcounts"] = bool(m_header.compatible_features & k_compat_lazy_refcounts);
    if (m_v3 && !m_bitmaps.empty())
        data["bitmaps"] = bitmaps_info();
    data["refcount-bits"] = 1u << m_header.refcount_order;
    if (nlohmann::json e = encryption_info(); !e.is_null())
        data["encrypt"] = e;
    if (!m_header.data_file.empty()) {
        data["data-file"] = m_header.data_file;
        data["data-file-raw"] = bool(m_header.autoclear_features & k_autoclear_data_file_raw);
    }
    if (m_v3) {
        data["corrupt"] = bool(m_header.incompatible_features & k_incompat_corrupt);
        data["extended-l2"] = bool(m_header.incompatible_features & k_incompat_extended_l2);
    }
    return nlohmann::json{{"type", "qcow2"}, {"data", data}};
}

static int probe_qcow2(std::span<const uint8_t> header, const std::string&)
{
    if (header.size() >= 8 && load_be32(header.data()) == k_magic && load_be32(header.data() + 4) >= 2)
        return 100;
    return 0;
}

} // namespace kiln::block::qcow2

namespace kiln::block {

const FormatDriver& qcow2_format_driver()
{
    static const FormatDriver driver{"qcow2", qcow2::probe_qcow2, qcow2::Qcow2Node::open, qcow2::create_image,
                                     qcow2::create_options};
    return driver;
}

} // namespace kiln::block
