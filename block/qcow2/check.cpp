// qemu-img check for qcow2: rebuilds the reference counts every structure
// implies (header, L1/L2 tables and data of the active state and every
// snapshot, snapshot table, refcount table and blocks), compares them with
// the stored ones, checks OFLAG_COPIED, and repairs what it is allowed to.
// Messages and counters follow QEMU's qcow2-refcount.c.
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

namespace {

std::string fmt(const char* format, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, format);
    std::vsnprintf(buf, sizeof(buf), format, ap);
    va_end(ap);
    return buf;
}

} // namespace

class Qcow2Checker {
public:
    Qcow2Checker(Qcow2Node& node, CheckResult& res) : q(node), r(res) {}

    Task<Result<void>> run(CheckFix fix);

private:
    void msg(std::string m) { r.messages.push_back(std::move(m)); }
    void inc(uint64_t offset, uint64_t bytes);
    bool check_entry_extras(uint64_t i, uint64_t e, ClusterType t, uint64_t bitmap);
    Task<Result<void>> check_l1(uint64_t l1_offset, uint64_t l1_size, bool active);
    Task<Result<void>> check_l2(uint64_t l2_offset, bool active);
    Task<Result<void>> check_copied(bool repair);

    Qcow2Node& q;
    CheckResult& r;
    std::vector<uint64_t> m_refs;
    uint64_t m_limit_clusters = 0;
};

// Extended-L2 bitmaps and data-file rules (QEMU's check_refcounts_l2);
// false when the entry must not be counted.
bool Qcow2Checker::check_entry_extras(uint64_t i, uint64_t e, ClusterType t, uint64_t bitmap)
{
    bool data_file = q.m_header.incompatible_features & k_incompat_data_file;
    if (t == ClusterType::Compressed) {
        if (data_file) {
            msg(fmt("ERROR compressed cluster %d with data file, entry=0x%" PRIx64, int(i), e));
            r.corruptions++;
            return false;
        }
        if (bitmap) {
            msg(fmt("ERROR compressed cluster %d with non-zero subcluster allocation bitmap, entry=0x%" PRIx64,
                    int(i), e));
            r.corruptions++;
        }
        return true;
    }
    if (!q.m_ext_l2)
        return true;
    if (t == ClusterType::Normal) {
        if ((bitmap >> 32) & bitmap & 0xffffffffull) {
            msg(fmt("ERROR offset=%" PRIx64 ": Allocated cluster has corrupted subcluster allocation bitmap",
                    e & k_l2e_offset_mask));
            r.corruptions++;
        }
    } else if (bitmap & 0xffffffffull) {
        msg("ERROR: Unallocated cluster has non-zero subcluster allocation map");
        r.corruptions++;
    }
    return true;
}

void Qcow2Checker::inc(uint64_t offset, uint64_t bytes)
{
    if (bytes == 0)
        return;
    uint64_t first = offset >> q.m_cluster_bits;
    uint64_t last = (offset + bytes - 1) >> q.m_cluster_bits;
    for (uint64_t c = first; c <= last; ++c) {
        if (c >= m_refs.size()) {
            if (c >= m_limit_clusters) {
                msg(fmt("ERROR: reference to cluster %" PRIu64 " beyond the end of the image", c));
                r.corruptions++;
                return;
            }
            m_refs.resize(c + 1, 0);
        }
        m_refs[c]++;
    }
}

Task<Result<void>> Qcow2Checker::check_l2(uint64_t l2_offset, bool active)
{
    std::vector<uint8_t> raw(q.m_cluster_size);
    auto rd = co_await read_clamped(*q.m_file, l2_offset, raw.data(), raw.size());
    const uint64_t stride = q.m_l2_entry_bytes;
    if (!rd) {
        msg("ERROR: I/O error in check_refcounts_l2");
        r.check_errors++;
        co_return ok();
    }
    uint64_t next_contiguous = 0;
    for (uint64_t i = 0; i < q.m_l2_entries; ++i) {
        uint64_t e = load_be64(&raw[i * stride]);
        ClusterType t = q.type_of(e);
        if (t != ClusterType::Compressed && (e & k_l2e_std_reserved_mask & ~(q.zero_flag() ? 0 : k_oflag_zero))) {
            msg(fmt("ERROR found l2 entry with reserved bits set: %" PRIx64, e));
            r.corruptions++;
        }
        uint64_t bitmap = q.m_ext_l2 ? load_be64(&raw[i * stride + 8]) : 0;
        if (!check_entry_extras(i, e, t, bitmap))
            continue;
        switch (t) {
        case ClusterType::Compressed: {
            if (e & k_oflag_copied) {
                msg(fmt("ERROR: coffset=0x%" PRIx64 ": copied flag must never be set for compressed clusters",
                        e & q.m_compressed_offset_mask));
                r.corruptions++;
            }
            uint64_t coffset = e & q.m_compressed_offset_mask;
            uint64_t sectors = ((e >> q.m_compressed_shift) & q.m_compressed_mask) + 1;
            inc(coffset, sectors * 512 - (coffset & 511));
            if (active) {
                r.allocated_clusters++;
                r.compressed_clusters++;
                r.fragmented_clusters++;
            }
            break;
        }
        case ClusterType::ZeroAlloc:
        case ClusterType::Normal: {
            uint64_t off = e & k_l2e_offset_mask;
            if (off & (q.m_cluster_size - 1)) {
                r.corruptions++;
                if (t == ClusterType::ZeroAlloc)
                    msg(fmt("ERROR offset=%" PRIx64 ": Preallocated cluster is not properly aligned; L2 entry "
                            "corrupted.",
                            off));
                else
                    msg(fmt("ERROR offset=%" PRIx64 ": Data cluster is not properly aligned; L2 entry corrupted.",
                            off));
            }
            if (active) {
                r.allocated_clusters++;
                if (next_contiguous && off != next_contiguous)
                    r.fragmented_clusters++;
                next_contiguous = off + q.m_cluster_size;
            }
            if (!(q.m_header.incompatible_features & k_incompat_data_file)) // no refcounts in a data file
                inc(off, q.m_cluster_size);
            break;
        }
        default:
            break;
        }
    }
    co_return ok();
}

Task<Result<void>> Qcow2Checker::check_l1(uint64_t l1_offset, uint64_t l1_size, bool active)
{
    if (!l1_size)
        co_return ok();
    inc(l1_offset, l1_size * 8);
    std::vector<uint8_t> raw(l1_size * 8);
    auto rd = co_await read_clamped(*q.m_file, l1_offset, raw.data(), raw.size());
    if (!rd) {
        msg("ERROR: I/O error in check_refcounts_l1");
        r.check_errors++;
        co_return ok();
    }
    for (uint64_t i = 0; i < l1_size; ++i) {
        uint64_t e = load_be64(&raw[i * 8]);
        if (!e)
            continue;
        if (e & k_l1e_reserved_mask) {
            msg(fmt("ERROR found L1 entry with reserved bits set: %" PRIx64, e));
            r.corruptions++;
        }
        uint64_t l2 = e & k_l1e_offset_mask;
        inc(l2, q.m_cluster_size);
        if (l2 & (q.m_cluster_size - 1)) {
            msg(fmt("ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; L1 entry corrupted", l2));
            r.corruptions++;
            continue;
        }
        if (l2 == 0)
            continue;
        CO_TRY(co_await check_l2(l2, active));
    }
    co_return ok();
}

Task<Result<void>> Qcow2Checker::check_copied(bool repair)
{
    for (uint64_t i = 0; i < q.m_l1.size(); ++i) {
        uint64_t l1e = q.m_l1[i];
        uint64_t l2 = l1e & k_l1e_offset_mask;
        if (!l2 || (l2 & (q.m_cluster_size - 1)))
            continue;
        auto rc = co_await q.get_refcount(l2 >> q.m_cluster_bits);
        if (!rc)
            continue;
        if ((*rc == 1) != bool(l1e & k_oflag_copied)) {
            r.corruptions++;
            msg(fmt("%s OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%" PRIx64 " refcount=%" PRIu64,
                    repair ? "Repairing" : "ERROR", int(i), l1e, *rc));
            if (repair) {
                q.m_l1[i] = *rc == 1 ? (l1e | k_oflag_copied) : (l1e & ~k_oflag_copied);
                auto w = co_await q.write_l1_entry(i);
                if (!w) {
                    r.check_errors++;
                    co_return ok();
                }
                r.corruptions--;
                r.corruptions_fixed++;
            }
        }
        q.m_l2_cache->drop(l2);
        TablePtr table = CO_TRY(co_await q.m_l2_cache->get(l2));
        bool dirty = false;
        uint64_t fixed_here = 0;
        for (uint64_t j = 0; j < q.m_l2_entries; ++j) {
            uint64_t e = q.l2_get(*table, j);
            ClusterType t = q.type_of(e);
            if (t != ClusterType::Normal && t != ClusterType::ZeroAlloc)
                continue;
            uint64_t off = e & k_l2e_offset_mask;
            if (off & (q.m_cluster_size - 1))
                continue;
            bool data_file = q.m_header.incompatible_features & k_incompat_data_file;
            auto drc = data_file ? Result<uint64_t>(uint64_t(1)) : co_await q.get_refcount(off >> q.m_cluster_bits);
            if (!drc)
                continue;
            if ((*drc == 1) != bool(e & k_oflag_copied)) {
                r.corruptions++;
                msg(fmt("%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64 " refcount=%" PRIu64,
                        repair ? "Repairing" : "ERROR", e, *drc));
                if (repair) {
                    q.l2_set(*table, j, *drc == 1 ? (e | k_oflag_copied) : (e & ~k_oflag_copied));
                    dirty = true;
                    ++fixed_here;
                }
            }
        }
        if (dirty) {
            auto w = co_await q.m_l2_cache->write(*table, 0, q.m_cluster_size);
            if (!w) {
                r.check_errors++;
                q.m_l2_cache->drop(l2);
                co_return ok();
            }
            r.corruptions -= fixed_here;
            r.corruptions_fixed += fixed_here;
        }
    }
    co_return ok();
}

Task<Result<void>> Qcow2Checker::run(CheckFix fix)
{
    uint64_t cs = q.m_cluster_size;
    uint64_t file_size = q.m_file->size_bytes();
    uint64_t nb_clusters = div_round_up(file_size, cs);
    // References may point a little past EOF (a short last cluster), never
    // far: bound memory by what the file and its refcount table describe.
    m_limit_clusters = std::max<uint64_t>(nb_clusters + 1, 1) + q.m_reftable.size();
    m_refs.assign(nb_clusters, 0);
    r.total_clusters = div_round_up(q.m_size, cs);

    inc(0, cs);
    if ((q.m_header.incompatible_features & k_incompat_data_file) && !q.m_snapshots.empty()) {
        msg(fmt("ERROR %d snapshots in image with data file", int(q.m_snapshots.size())));
        r.corruptions++;
    }
    CO_TRY(co_await check_l1(q.m_l1_offset, q.m_l1.size(), true));
    for (const auto& sn : q.m_snapshots) {
        if (sn.l1_table_offset & (cs - 1)) {
            msg(fmt("ERROR snapshot %s (%s) l1_offset=%#" PRIx64
                    ": L1 table is not cluster aligned; snapshot table entry corrupted",
                    sn.info.id.c_str(), sn.info.name.c_str(), sn.l1_table_offset));
            r.corruptions++;
            continue;
        }
        if (uint64_t(sn.l1_size) * 8 > k_max_l1_bytes) {
            msg(fmt("ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is too large; snapshot table entry "
                    "corrupted",
                    sn.info.id.c_str(), sn.info.name.c_str(), sn.l1_size));
            r.corruptions++;
            continue;
        }
        CO_TRY(co_await check_l1(sn.l1_table_offset, sn.l1_size, false));
    }
    if (q.m_header.nb_snapshots) {
        uint64_t bytes = q.m_snapshot_table_bytes ? q.m_snapshot_table_bytes
                                                  : serialize_snapshot_table(q.m_snapshots).size();
        inc(q.m_header.snapshots_offset, bytes);
    }
    // The LUKS header area is a reference too.
    if (q.m_header.crypt_method == 2) {
        auto area = q.luks_area();
        if (area)
            inc(area->offset, area->length);
    }
    // Persistent bitmaps (directory, tables, data) are references too.
    auto bitmap_refs = co_await q.bitmap_clusters();
    if (!bitmap_refs) {
        msg("ERROR bitmaps: " + bitmap_refs.error().message());
        r.corruptions++;
    } else {
        for (uint64_t c : *bitmap_refs)
            inc(c << q.m_cluster_bits, cs);
    }
    inc(q.m_header.refcount_table_offset, uint64_t(q.m_header.refcount_table_clusters) * cs);
    for (uint64_t i = 0; i < q.m_reftable.size(); ++i) {
        uint64_t off = q.m_reftable[i] & k_reftable_offset_mask;
        if (!off)
            continue;
        if (off & (cs - 1)) {
            msg(fmt("ERROR refcount block %" PRId64 " is not cluster aligned; refcount table entry corrupted",
                    int64_t(i)));
            r.corruptions++;
            continue;
        }
        if (off >= file_size) {
            msg(fmt("ERROR refcount block %" PRId64 " is outside image", int64_t(i)));
            r.corruptions++;
            continue;
        }
        inc(off, cs);
    }

    // Compare with the stored refcounts (and fix).
    bool fix_leaks = uint32_t(fix) & uint32_t(CheckFix::Leaks);
    bool fix_errors = uint32_t(fix) & uint32_t(CheckFix::Errors);
    if (fix_leaks || fix_errors) {
        // New refcount blocks made while repairing must not land on a
        // cluster that is referenced but counted as free.
        q.m_alloc_floor = m_refs.size();
    }
    uint64_t highest = 0;
    bool any = false;
    std::vector<uint64_t> stored(m_refs.size());
    for (uint64_t i = 0; i < m_refs.size(); ++i) {
        auto rc = co_await q.get_refcount(i);
        if (!rc) {
            msg(fmt("Can't get refcount for cluster %" PRId64 ": %s", int64_t(i), rc.error().message().c_str()));
            r.check_errors++;
            continue;
        }
        uint64_t r1 = *rc, r2 = m_refs[i];
        if (r1 > 0 || r2 > 0) {
            highest = i;
            any = true;
        }
        if (r1 == r2)
            continue;
        bool fixable = (r1 > r2 && fix_leaks) || (r1 < r2 && fix_errors);
        msg(fmt("%s cluster %" PRId64 " refcount=%" PRIu64 " reference=%" PRIu64,
                fixable ? "Repairing" : r1 < r2 ? "ERROR" : "Leaked", int64_t(i), r1, r2));
        if (fixable) {
            if (r2 > q.refcount_max()) {
                r.check_errors++;
                continue;
            }
            auto w = co_await q.set_refcounts(i, 1, r2);
            if (!w && r2 > 0 && w.error().kind() == ErrorKind::Internal) {
                // No refcount block covers the cluster yet: make one at the
                // end of the image.
                uint64_t t = i / q.refblock_entries();
                uint64_t c = std::max(q.m_alloc_floor, div_round_up(q.m_file->size_bytes(), cs));
                if (t >= q.m_reftable.size())
                    w = co_await q.grow_refcount_table(std::max(c, q.m_reftable.size() * q.refblock_entries()), t + 1);
                if (w && !(q.m_reftable[t] & k_reftable_offset_mask)) {
                    // Place the block anywhere past what is referenced.
                    uint64_t at = CO_TRY(co_await q.alloc_clusters(1));
                    q.m_reftable[t] = at;
                    TablePtr block = q.m_refcount_cache->create(at);
                    w = co_await q.m_refcount_cache->write(*block, 0, cs);
                    if (w)
                        w = co_await q.m_file->flush();
                    if (w)
                        w = co_await q.write_reftable_entry(t);
                }
                if (w)
                    w = co_await q.set_refcounts(i, 1, r2);
            }
            if (w) {
                if (r1 < r2)
                    r.corruptions_fixed++;
                else
                    r.leaks_fixed++;
                continue;
            }
            r.check_errors++;
        }
        if (r1 < r2)
            r.corruptions++;
        else
            r.leaks++;
    }
    // Like qemu-img, refcounts of clusters past the end of the file are not
    // compared: a writer killed between writing a refcount and the data
    // that would have extended the file leaves such a count, and it is
    // harmless (the allocator skips the cluster).
    q.m_alloc_floor = 0;
    r.image_end_offset = any ? (highest + 1) * cs : cs;

    bool repair_copied = fix_errors || (fix_leaks && !r.check_errors && !r.corruptions && !r.leaks);
    CO_TRY(co_await check_copied(repair_copied));
    if (fix_leaks || fix_errors)
        CO_TRY(co_await q.m_file->flush());
    co_return ok();
}

Task<Result<CheckResult>> Qcow2Node::check(CheckFix fix)
{
    if (fix != CheckFix::None && read_only())
        co_return Error{ErrorKind::PermissionDenied, "Cannot repair a read-only image", EPERM};
    auto guard = co_await co_lock(m_meta_lock);
    // The checker reads tables from the file: write back what is cached.
    CO_TRY(co_await commit_metadata());
    CheckResult res;
    Qcow2Checker checker(*this, res);
    CO_TRY(co_await checker.run(fix));
    if (fix != CheckFix::None)
        CO_TRY(co_await commit_metadata());
    if (fix != CheckFix::None)
        m_free_cluster_hint = 0;
    co_return res;
}

} // namespace kiln::block::qcow2
