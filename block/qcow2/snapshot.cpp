// Internal snapshot table: parsing (v2 and v3 extra data), listing, and
// loading one snapshot read-only (convert -l). Creating, reverting and
// deleting snapshots build on the same table code.
#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

static constexpr uint32_t k_snapshot_fixed_bytes = 40;
static constexpr uint64_t k_max_snapshot_table_bytes = 64ull << 20; // QCOW_MAX_SNAPSHOTS_SIZE
static constexpr uint32_t k_max_extra_bytes = 1024;

// Parses one entry from `b`; returns its length (padded to 8) or an error.
static Result<size_t> parse_entry(std::span<const uint8_t> b, Snapshot& sn)
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
        return Error::corrupt("Too much extra metadata in snapshot table entry");
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
        size_t n = TRY(parse_entry(b.subspan(std::min(pos, b.size())), sn));
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
            co_return Error::corrupt("Too much extra metadata in snapshot table entry");
        std::vector<uint8_t> buf(total);
        CO_TRY(co_await read_clamped(*m_file, pos, buf.data(), total));
        Snapshot sn;
        size_t n = CO_TRY(parse_entry(buf, sn));
        if (sn.info.disk_size == 0)
            sn.info.disk_size = m_size;
        m_snapshots.push_back(std::move(sn));
        pos += n;
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
    const Snapshot* found = nullptr;
    for (const auto& sn : m_snapshots) {
        if (!id.empty() && sn.info.id != id)
            continue;
        if (!name.empty() && sn.info.name != name)
            continue;
        if (id.empty() && name.empty())
            continue;
        found = &sn;
        break;
    }
    if (!found)
        co_return Error::not_found("Can't find snapshot");
    if (uint64_t(found->l1_size) * 8 > k_max_l1_bytes)
        co_return Error::corrupt("Snapshot L1 table too large");
    if (found->l1_table_offset & (m_cluster_size - 1) || found->l1_table_offset >= m_file->size_bytes())
        co_return Error::corrupt("Snapshot L1 table offset invalid");
    std::vector<uint8_t> raw(uint64_t(found->l1_size) * 8);
    CO_TRY(co_await read_clamped(*m_file, found->l1_table_offset, raw.data(), raw.size()));
    std::vector<uint64_t> l1(found->l1_size);
    for (size_t i = 0; i < l1.size(); ++i)
        l1[i] = load_be64(&raw[i * 8]);
    m_l1 = std::move(l1);
    m_l1_offset = found->l1_table_offset;
    m_snapshot_loaded = true;
    co_return ok();
}

} // namespace kiln::block::qcow2
