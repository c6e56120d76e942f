// qemu-img amend for qcow2 (QEMU's qcow2_amend_options, same order and
// messages): compat upgrade, refcount width change, backing file, lazy
// refcounts, size, then compat downgrade (which expands zero clusters in
// the active state and every snapshot). Options only creation knows are
// refused; external data file options are not supported. LUKS key slot
// options (encrypt.*) are applied right after a compat upgrade, as QEMU
// does (encryption.cpp).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

const char* const k_amend_keys[] = {"backing_file", "backing_fmt", "compat", "data_file", "data_file_raw",
    "encrypt.iter-time", "encrypt.keyslot", "encrypt.new-secret", "encrypt.old-secret", "encrypt.state",
    "lazy_refcounts", "refcount_bits", "size"};
const char* const k_create_only[] = {"cluster_size", "compression_type", "encrypt.format", "encrypt.key-secret",
    "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "encrypt.hash-alg",
    "encryption", "extended_l2", "preallocation"};

} // namespace

Task<Result<void>> Qcow2Node::amend(const OptionList& options, AmendFlags flags)
{
    for (const auto& [key, value] : options.entries()) {
        if (std::find(std::begin(k_create_only), std::end(k_create_only), key) != std::end(k_create_only))
            co_return Error::invalid("Invalid parameter '" + key + "'\nThis option is only supported for image creation");
        if (std::find(std::begin(k_amend_keys), std::end(k_amend_keys), key) == std::end(k_amend_keys))
            co_return Error::invalid("Invalid parameter '" + key + "'");
    }
    if (read_only())
        co_return Error{ErrorKind::PermissionDenied, "Block node is read-only", EPERM};
    uint32_t version = m_header.version;
    if (auto v = options.get("compat")) {
        if (*v == "0.10" || *v == "v2")
            version = 2;
        else if (*v == "1.1" || *v == "v3")
            version = 3;
        else
            co_return Error::invalid("Parameter 'compat' does not accept value '" + *v + "'");
    }
    std::optional<bool> lazy = CO_TRY(options.get_bool("lazy_refcounts"));
    std::optional<uint64_t> refcount_bits = CO_TRY(options.get_number("refcount_bits"));
    std::optional<uint64_t> size = CO_TRY(options.get_size("size"));
    for (const char* k : {"data_file", "data_file_raw"})
        if (options.has(k))
            co_return Error::not_supported("qcow2: amending external data file options is not supported");
    std::optional<crypto::LuksAmendOptions> encryption = CO_TRY(check_encryption_amend(options));
    if (lazy && *lazy && version < 3)
        co_return Error::invalid("Lazy refcounts only supported with compatibility level 1.1 and above (use "
                                 "compat=1.1 or greater)");
    uint32_t order = m_header.refcount_order;
    if (refcount_bits) {
        uint64_t bits = *refcount_bits;
        if (bits == 0 || bits > 64 || (bits & (bits - 1)))
            co_return Error::invalid("Refcount width must be a power of two and may not exceed 64 bits");
        order = uint32_t(__builtin_ctzll(bits));
        if (version < 3 && bits != 16)
            co_return Error::invalid("Refcount widths other than 16 bits require compatibility level 1.1 or above "
                                     "(use compat=1.1 or greater)");
    }
    if (version < m_header.version && order != 4)
        co_return Error::invalid("compat=0.10 requires refcount_bits=16");
    if (version < m_header.version) {
        if (m_header.compression_type != k_compression_zlib)
            co_return Error::not_supported("Cannot downgrade an image with a non-zlib compression type");
        if (!m_bitmaps.empty())
            co_return Error::not_supported("Cannot downgrade an image with bitmaps");
        uint64_t incompatible = m_header.incompatible_features & ~k_incompat_dirty;
        if (incompatible) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "Cannot downgrade an image with incompatible features %#" PRIx64 " set",
                          incompatible);
            co_return Error::not_supported(buf);
        }
    }

    if (version > m_header.version) {
        auto guard = co_await co_lock(m_meta_lock);
        m_header.version = 3;
        m_header.refcount_order = 4;
        if (m_header.feature_names.empty())
            m_header.feature_names = default_feature_names();
        m_v3 = true;
        CO_TRY(co_await write_header());
        CO_TRY(co_await m_file->flush());
    }
    if (encryption)
        CO_TRY(co_await amend_encryption(*encryption, flags));
    if (order != m_header.refcount_order)
        CO_TRY(co_await change_refcount_order(order));
    if (options.has("backing_file") || options.has("backing_fmt")) {
        std::string file = options.get("backing_file").value_or(m_header.backing_file);
        std::string fmt = options.get("backing_fmt").value_or(m_header.backing_format);
        if (file.empty() && !fmt.empty())
            co_return Error::invalid("Backing format cannot be used without backing file");
        CO_TRY(co_await set_backing(file, fmt));
    }
    if (lazy) {
        auto guard = co_await co_lock(m_meta_lock);
        if (*lazy)
            m_header.compatible_features |= k_compat_lazy_refcounts;
        else
            m_header.compatible_features &= ~k_compat_lazy_refcounts;
        if (!*lazy && m_lazy_dirty) {
            // Refcounts are exact already: just end the session's bit.
            m_lazy_dirty = false;
            m_header.incompatible_features &= ~k_incompat_dirty;
        }
        // Refcount blocks may lag the pointers on disk in a lazy session.
        CO_TRY(co_await commit_metadata());
        CO_TRY(co_await write_header());
        CO_TRY(co_await m_file->flush());
    }
    if (size && *size != m_size)
        CO_TRY(co_await truncate(*size, PreallocMode::Off, true));
    if (version < m_header.version)
        CO_TRY(co_await downgrade_to_v2());
    co_return ok();
}

// Every cluster something points at, with how many references it has
// (what the refcounts must say), leaving out the refcount structures.
Task<Result<std::map<uint64_t, uint64_t>>> Qcow2Node::count_references()
{
    std::map<uint64_t, uint64_t> refs;
    auto add_range = [&](uint64_t off, uint64_t bytes) {
        if (bytes == 0)
            return;
        for (uint64_t c = off >> m_cluster_bits; c <= (off + bytes - 1) >> m_cluster_bits; ++c)
            refs[c]++;
    };
    add_range(0, m_cluster_size);
    add_range(m_l1_offset, m_l1.size() * 8);
    for (uint64_t c : CO_TRY(co_await tree_clusters(m_l1)))
        refs[c]++;
    for (const Snapshot& sn : m_snapshots) {
        add_range(sn.l1_table_offset, uint64_t(sn.l1_size) * 8);
        std::vector<uint64_t> l1 = CO_TRY(co_await read_snapshot_l1(sn));
        for (uint64_t c : CO_TRY(co_await tree_clusters(l1)))
            refs[c]++;
    }
    if (m_header.nb_snapshots)
        add_range(m_header.snapshots_offset, m_snapshot_table_bytes);
    for (uint64_t c : CO_TRY(co_await bitmap_clusters()))
        refs[c]++;
    if (m_header.crypt_method == 2) {
        LuksArea area = CO_TRY(luks_area());
        add_range(area.offset, area.length);
    }
    co_return refs;
}

// New refcount table and blocks of the new width are built past the end
// of everything, in memory, counting themselves; one header write switches
// to them and the old structures become free clusters.
Task<Result<void>> Qcow2Node::change_refcount_order(uint32_t order)
{
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    std::map<uint64_t, uint64_t> refs = CO_TRY(co_await count_references());
    uint64_t max = order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
    for (auto [cluster, count] : refs) {
        if (count > max) {
            char buf[160];
            std::snprintf(buf, sizeof buf,
                          "Cannot decrease refcount entry width to %u bits: Cluster at offset %#" PRIx64
                          " has a refcount of %" PRIu64,
                          1u << order, cluster << m_cluster_bits, count);
            co_return Error::invalid(buf);
        }
    }
    uint64_t end = std::max<uint64_t>(div_round_up(m_file->size_bytes(), m_cluster_size),
                                      refs.empty() ? 1 : refs.rbegin()->first + 1);
    uint64_t per_block = (m_cluster_size * 8) >> order;
    uint64_t per_table_cluster = m_cluster_size / 8;
    uint64_t blocks = 0, table_clusters = 0;
    for (int iter = 0; iter < 64; ++iter) {
        uint64_t total = end + blocks + table_clusters;
        uint64_t need_blocks = div_round_up(total, per_block);
        uint64_t need_table = div_round_up(need_blocks, per_table_cluster);
        if (need_blocks == blocks && need_table == table_clusters)
            break;
        blocks = need_blocks;
        table_clusters = need_table;
    }
    if (table_clusters * m_cluster_size > k_max_refcount_table_bytes)
        co_return Error{ErrorKind::NoSpace, "qcow2: reference count table would exceed its maximum size", EFBIG};
    for (uint64_t c = end; c < end + blocks + table_clusters; ++c)
        refs[c] = 1;
    // Blocks first (cluster `end` on), then the table; packed with the
    // new width by refblock_set.
    std::vector<std::unique_ptr<CachedTable>> built;
    for (uint64_t b = 0; b < blocks; ++b) {
        built.push_back(std::make_unique<CachedTable>(context().loop()));
        built.back()->data.assign(m_cluster_size, 0);
    }
    uint32_t saved_order = m_header.refcount_order;
    m_header.refcount_order = order;
    for (auto [cluster, count] : refs)
        refblock_set(*built[cluster / per_block], cluster % per_block, count);
    m_header.refcount_order = saved_order;
    std::vector<uint8_t> area((blocks + table_clusters) * m_cluster_size, 0);
    std::vector<uint64_t> table(table_clusters * per_table_cluster, 0);
    for (uint64_t b = 0; b < blocks; ++b) {
        std::copy(built[b]->data.begin(), built[b]->data.end(), area.begin() + long(b * m_cluster_size));
        table[b] = (end + b) << m_cluster_bits;
        store_be64(&area[blocks * m_cluster_size + b * 8], table[b]);
    }
    CO_TRY(co_await m_file->pwritev(end << m_cluster_bits, QIov(area.data(), area.size()), RequestFlags::None));
    note_write();
    CO_TRY(co_await flush_covering(m_write_seq));
    Header saved = m_header;
    m_header.refcount_order = order;
    m_header.refcount_table_offset = (end + blocks) << m_cluster_bits;
    m_header.refcount_table_clusters = uint32_t(table_clusters);
    auto h = co_await write_header();
    if (!h) {
        m_header = saved;
        co_return std::move(h).error();
    }
    CO_TRY(co_await flush_covering(m_write_seq));
    m_reftable = std::move(table);
    m_refcount_cache->clear();
    m_free_cluster_hint = 0;
    m_alloc_floor = 0;
    // The old refcount structures are free clusters now, old bytes and all
    // (lazy commits must not take them for fresh ones).
    if (m_fresh_from_cluster != UINT64_MAX)
        m_fresh_from_cluster = std::max(m_fresh_from_cluster, div_round_up(m_file->size_bytes(), m_cluster_size));
    co_return ok();
}

// Zero clusters do not exist in v2: plain ones become unallocated (or,
// over a backing file, zero-filled data clusters) and preallocated ones
// zero-filled data clusters, in every L1 tree.
Task<Result<void>> Qcow2Node::expand_zero_clusters(std::vector<uint64_t> l1)
{
    for (uint64_t i = 0; i < l1.size(); ++i) {
        uint64_t l2_off = l1[i] & k_l1e_offset_mask;
        if (!l2_off)
            continue;
        CO_TRY(check_l2_offset(l2_off, i));
        TablePtr table = CO_TRY(co_await m_l2_cache->get(l2_off));
        uint64_t table_rc = CO_TRY(co_await get_refcount(l2_off >> m_cluster_bits));
        bool changed = false;
        for (uint64_t j = 0; j < m_l2_entries; ++j) {
            uint64_t e = l2_get(*table, j);
            ClusterType t = cluster_type(e, true);
            if (t != ClusterType::ZeroPlain && t != ClusterType::ZeroAlloc)
                continue;
            uint64_t host = e & k_l2e_offset_mask;
            if (t == ClusterType::ZeroPlain && !m_backing && !backing_file_name().size()) {
                l2_set(*table, j, 0);
                changed = true;
                continue;
            }
            // A preallocated zero cluster may still hold data another L1
            // tree reads (a snapshot taken before the zero write): then it
            // gets a fresh cluster instead of being zeroed in place (QEMU
            // 7.2 zeroes it in place and so corrupts that snapshot).
            uint64_t old_host = 0;
            if (t == ClusterType::ZeroAlloc && CO_TRY(co_await get_refcount(host >> m_cluster_bits)) != table_rc) {
                old_host = host;
                t = ClusterType::ZeroPlain;
            }
            if (t == ClusterType::ZeroPlain) {
                host = CO_TRY(co_await alloc_clusters(1));
                // One reference per L1 tree that reaches this table.
                if (table_rc > 1)
                    CO_TRY(co_await set_refcounts(host >> m_cluster_bits, 1, table_rc));
            }
            CO_TRY(co_await m_file->pwrite_zeroes(host, m_cluster_size, RequestFlags::None));
            note_write();
            CO_TRY(co_await order_after_refcounts()); // the new cluster's count, then the entry
            uint64_t rc = CO_TRY(co_await get_refcount(host >> m_cluster_bits));
            l2_set(*table, j, host | (rc == 1 ? k_oflag_copied : 0));
            changed = true;
            if (old_host) {
                CO_TRY(co_await m_l2_cache->write(*table, j * 8, (j + 1) * 8));
                note_write();
                CO_TRY(co_await flush_covering(m_write_seq));
                CO_TRY(co_await change_refcount(old_host >> m_cluster_bits, -int64_t(table_rc)));
            }
        }
        if (changed) {
            CO_TRY(co_await m_l2_cache->write(*table, 0, m_cluster_size));
            note_write();
        }
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::downgrade_to_v2()
{
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await commit_metadata());
    CO_TRY(co_await expand_zero_clusters(m_l1));
    for (const Snapshot& sn : m_snapshots)
        CO_TRY(co_await expand_zero_clusters(CO_TRY(co_await read_snapshot_l1(sn))));
    CO_TRY(co_await commit_metadata());
    m_header.version = 2;
    m_header.compatible_features = 0;
    m_header.autoclear_features = 0;
    m_header.incompatible_features = 0;
    m_header.feature_names.clear();
    m_lazy_dirty = false;
    m_v3 = false;
    CO_TRY(co_await write_header());
    CO_TRY(co_await m_file->flush());
    co_return ok();
}

} // namespace kiln::block::qcow2
