// Internal snapshot table: parsing (v2 and v3 extra data), listing, and
// loading one snapshot read-only (convert -l). Creating, reverting and
// deleting snapshots build on the same table code.
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

static constexpr uint32_t k_snapshot_fixed_bytes = 40;
static constexpr uint64_t k_max_snapshot_table_bytes = 64ull << 20; // QCOW_MAX_SNAPSHOTS_SIZE
static constexpr uint32_t k_max_extra_bytes = 1024;

// Parses one entry from `b`; returns its length (padded to 8) or an error.
static Error too_much_extra(uint32_t index)
{
    return Error::corrupt("Too much extra metadata in snapshot table entry " + std::to_string(index));
}

static Result<size_t> parse_entry(std::span<const uint8_t> b, Snapshot& sn, uint32_t index)
{
    if (b.size() < k_snapshot_fixed_bytes)
        return Error::corrupt("qcow2: snapshot table is truncated");
    const uint8_t* p = b.data();
    sn.l1_table_offset = load_be64(p);
    sn.l1_size = load_be32(p + 8);
    uint16_t id_len = load_be16(p + 12);
    uint16_t name_len = load_be16(p + 14);
    sn.info.date_sec = load_be32(p + 16);
    sn.info.date_nsec = load_be32(p + 20);
    sn.info.vm_clock_nsec = load_be64(p + 24);
    sn.vm_state_size32 = load_be32(p + 32);
    sn.info.vm_state_size = sn.vm_state_size32;
    uint32_t extra = load_be32(p + 36);
    if (extra > k_max_extra_bytes)
        return too_much_extra(index);
    size_t total = size_t(k_snapshot_fixed_bytes) + extra + id_len + name_len;
    if (b.size() < total)
        return Error::corrupt("qcow2: snapshot table is truncated");
    const uint8_t* x = p + k_snapshot_fixed_bytes;
    if (extra >= 8)
        sn.info.vm_state_size = load_be64(x);
    if (extra >= 16)
        sn.info.disk_size = load_be64(x + 8);
    if (extra >= 24)
        sn.info.icount = load_be64(x + 16);
    if (extra > 24)
        sn.extra_unknown.assign(x + 24, x + extra);
    const char* s = reinterpret_cast<const char*>(x + extra);
    sn.info.id.assign(s, id_len);
    sn.info.name.assign(s + id_len, name_len);
    return align_up(total, 8);
}

Result<std::vector<Snapshot>> parse_snapshot_table(std::span<const uint8_t> b, uint32_t count)
{
    std::vector<Snapshot> out;
    size_t pos = 0;
    for (uint32_t i = 0; i < count; ++i) {
        Snapshot sn;
        size_t n = TRY(parse_entry(b.subspan(std::min(pos, b.size())), sn, i));
        pos += n;
        out.push_back(std::move(sn));
    }
    return out;
}

std::vector<uint8_t> serialize_snapshot_table(const std::vector<Snapshot>& snapshots)
{
    std::vector<uint8_t> out;
    for (const auto& sn : snapshots) {
        uint32_t extra = uint32_t(24 + sn.extra_unknown.size());
        size_t total = k_snapshot_fixed_bytes + extra + sn.info.id.size() + sn.info.name.size();
        size_t at = out.size();
        out.resize(at + align_up(total, 8), 0);
        uint8_t* p = &out[at];
        store_be64(p, sn.l1_table_offset);
        store_be32(p + 8, sn.l1_size);
        store_be16(p + 12, uint16_t(sn.info.id.size()));
        store_be16(p + 14, uint16_t(sn.info.name.size()));
        store_be32(p + 16, sn.info.date_sec);
        store_be32(p + 20, sn.info.date_nsec);
        store_be64(p + 24, sn.info.vm_clock_nsec);
        store_be32(p + 32, sn.info.vm_state_size > UINT32_MAX ? 0 : uint32_t(sn.info.vm_state_size));
        store_be32(p + 36, extra);
        uint8_t* x = p + k_snapshot_fixed_bytes;
        store_be64(x, sn.info.vm_state_size);
        store_be64(x + 8, sn.info.disk_size);
        store_be64(x + 16, sn.info.icount);
        if (!sn.extra_unknown.empty())
            std::memcpy(x + 24, sn.extra_unknown.data(), sn.extra_unknown.size());
        std::memcpy(x + extra, sn.info.id.data(), sn.info.id.size());
        std::memcpy(x + extra + sn.info.id.size(), sn.info.name.data(), sn.info.name.size());
    }
    return out;
}

Task<Result<void>> Qcow2Node::load_snapshots()
{
    m_snapshots.clear();
    if (m_header.nb_snapshots == 0)
        co_return ok();
    // Read entry by entry: the table's length is only known by walking it,
    // and the file may be large.
    uint64_t pos = m_header.snapshots_offset;
    uint64_t file_size = m_file->size_bytes();
    for (uint32_t i = 0; i < m_header.nb_snapshots; ++i) {
        if (pos - m_header.snapshots_offset > k_max_snapshot_table_bytes)
            co_return Error::corrupt("Snapshot table too large");
        if (pos >= file_size)
            co_return Error::corrupt("qcow2: snapshot table is truncated");
        uint8_t fixed[k_snapshot_fixed_bytes];
        CO_TRY(co_await read_clamped(*m_file, pos, fixed, sizeof(fixed)));
        size_t total = k_snapshot_fixed_bytes + load_be32(fixed + 36) + load_be16(fixed + 12) + load_be16(fixed + 14);
        if (load_be32(fixed + 36) > k_max_extra_bytes)
            co_return too_much_extra(i);
        std::vector<uint8_t> buf(total);
        CO_TRY(co_await read_clamped(*m_file, pos, buf.data(), total));
        Snapshot sn;
        size_t n = CO_TRY(parse_entry(buf, sn, i));
        if (sn.info.disk_size == 0)
            sn.info.disk_size = m_size;
        m_snapshots.push_back(std::move(sn));
        pos += n;
    }
    m_snapshot_table_bytes = pos - m_header.snapshots_offset;
    co_return ok();
}

int Qcow2Node::find_snapshot(const std::string& id, const std::string& name) const
{
    for (size_t i = 0; i < m_snapshots.size(); ++i) {
        const SnapshotInfo& sn = m_snapshots[i].info;
        if ((id.empty() || sn.id == id) && (name.empty() || sn.name == name))
            return int(i);
    }
    return -1;
}

int Qcow2Node::find_snapshot_by_id_or_name(const std::string& id_or_name) const
{
    int i = find_snapshot(id_or_name, "");
    return i >= 0 ? i : find_snapshot("", id_or_name);
}

Task<Result<std::vector<uint64_t>>> Qcow2Node::read_snapshot_l1(const Snapshot& sn)
{
    if (uint64_t(sn.l1_size) * 8 > k_max_l1_bytes)
        co_return Error::corrupt("Snapshot L1 table too large");
    if (sn.l1_size && ((sn.l1_table_offset & (m_cluster_size - 1)) || sn.l1_table_offset < m_cluster_size
                       || sn.l1_table_offset >= m_file->size_bytes()))
        co_return Error::corrupt("Snapshot L1 table offset invalid");
    std::vector<uint8_t> raw(uint64_t(sn.l1_size) * 8);
    CO_TRY(co_await read_clamped(*m_file, sn.l1_table_offset, raw.data(), raw.size()));
    std::vector<uint64_t> l1(sn.l1_size);
    for (size_t i = 0; i < l1.size(); ++i)
        l1[i] = load_be64(&raw[i * 8]);
    co_return l1;
}

// QEMU's qcow2_write_snapshots order: the new table is written and flushed
// in fresh clusters, then the header points at it, then the old table's
// clusters are freed. A crash leaves the old or the new table, never a mix.
Task<Result<void>> Qcow2Node::write_snapshot_table(std::vector<Snapshot> list)
{
    std::vector<uint8_t> bytes = serialize_snapshot_table(list);
    if (bytes.size() > k_max_snapshot_table_bytes)
        co_return Error{ErrorKind::NoSpace, "Snapshot table too large", EFBIG};
    uint64_t table_bytes = bytes.size();
    uint64_t new_off = 0;
    if (!list.empty()) {
        uint64_t clusters = div_round_up(table_bytes, m_cluster_size);
        new_off = CO_TRY(co_await alloc_clusters(clusters));
        uint64_t align = std::min<uint64_t>(std::max<uint64_t>(512, m_file->request_alignment()), m_cluster_size);
        bytes.resize(align_up(bytes.size(), align), 0);
        auto w = co_await m_file->pwritev(new_off, QIov(bytes.data(), bytes.size()), RequestFlags::None);
        if (!w) {
            (void)co_await set_refcounts(new_off >> m_cluster_bits, clusters, 0);
            co_return std::move(w).error();
        }
        note_write();
    }
    CO_TRY(co_await order_after_refcounts());
    uint64_t old_off = m_header.snapshots_offset;
    uint32_t old_count = m_header.nb_snapshots;
    m_header.nb_snapshots = uint32_t(list.size());
    m_header.snapshots_offset = new_off;
    auto h = co_await write_header();
    if (!h) {
        m_header.nb_snapshots = old_count;
        m_header.snapshots_offset = old_off;
        co_return std::move(h).error(); // the new table leaks
    }
    CO_TRY(co_await flush_covering(m_write_seq));
    uint64_t old_bytes = m_snapshot_table_bytes;
    m_snapshots = std::move(list);
    m_snapshot_table_bytes = table_bytes;
    if (old_count && old_bytes) {
        std::vector<uint64_t> old_clusters, freed;
        for (uint64_t c = old_off >> m_cluster_bits; c <= (old_off + old_bytes - 1) >> m_cluster_bits; ++c)
            old_clusters.push_back(c);
        CO_TRY(co_await apply_refcount_delta(std::move(old_clusters), -1, &freed));
        co_await discard_freed(freed);
    }
    co_return ok();
}

std::vector<SnapshotInfo> Qcow2Node::snapshots() const
{
    std::vector<SnapshotInfo> out;
    for (const auto& sn : m_snapshots)
        out.push_back(sn.info);
    return out;
}

Task<Result<void>> Qcow2Node::snapshot_load_tmp(const std::string& id, const std::string& name)
{
    if (!read_only())
        co_return Error::invalid("qcow2: a snapshot can only be loaded temporarily into a read-only image");
    int i = id.empty() && name.empty() ? -1 : find_snapshot(id, name);
    if (i < 0)
        co_return Error::not_found("Can't find snapshot");
    const Snapshot& found = m_snapshots[size_t(i)];
    std::vector<uint64_t> l1 = CO_TRY(co_await read_snapshot_l1(found));
    m_l1 = std::move(l1);
    m_l1_offset = found.l1_table_offset;
    m_snapshot_loaded = true;
    co_return ok();
}

} // namespace kiln::block::qcow2
