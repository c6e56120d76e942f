// Read path and block status. Reads never take the metadata lock except to
// load an L2 table that is not cached, so reads of allocated clusters run
// concurrently with each other and with writes.
#include <cinttypes>
#include <cstdio>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::read_backing(uint64_t offset, QIov qiov)
{
    uint64_t len = qiov.size();
    uint64_t avail = 0;
    if (m_backing && offset < m_backing->size_bytes())
        avail = std::min<uint64_t>(len, m_backing->size_bytes() - offset);
    if (avail)
        CO_TRY(co_await m_backing->preadv(offset, qiov.slice(0, avail)));
    if (avail < len)
        qiov.fill(avail, 0, len - avail);
    co_return ok();
}

// Data past the end of the file reads as zeroes (as QEMU's file driver).
Task<Result<void>> Qcow2Node::read_file_clamped(uint64_t host, QIov part)
{
    BlockNode& data = *data_node();
    uint64_t run = part.size();
    uint64_t file_size = data.size_bytes();
    uint64_t avail = host >= file_size ? 0 : std::min(run, file_size - host);
    if (avail)
        CO_TRY(co_await data.preadv(host, part.slice(0, avail)));
    if (avail < run)
        part.fill(avail, 0, run - avail);
    co_return ok();
}

static Result<void> check_data_offset(uint64_t entry, uint64_t cluster_size, bool external = false)
{
    uint64_t host = entry & k_l2e_offset_mask;
    if (host & (cluster_size - 1)) {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "Corrupt image: cluster allocation offset %#" PRIx64 " unaligned", host);
        return Error::corrupt(buf);
    }
    if (host < cluster_size && !external)
        return Error::corrupt("Corrupt image: data cluster overlaps the image header");
    return ok();
}

Task<Result<void>> Qcow2Node::preadv(uint64_t offset, QIov qiov)
{
    uint64_t len = qiov.size();
    uint64_t pos = 0;
    while (pos < len) {
        uint64_t guest = offset + pos;
        uint64_t l1i = l1_index(guest);
        TablePtr table = CO_TRY(co_await l2_table_for_read(l1i));
        uint64_t idx = l2_index(guest);
        uint64_t in = offset_in_cluster(guest);
        uint64_t entry = table ? l2_get(*table, idx) : 0;
        ClusterType type = type_of(entry);
        uint64_t run = std::min(len - pos, m_cluster_size - in);
        CO_TRY(check_data_file_entry(guest, entry, l1i));
        if (m_ext_l2 && type != ClusterType::Compressed) {
            uint64_t bitmap = table ? l2_bitmap(*table, idx) : 0;
            CO_TRY(check_subcluster_bitmap(entry, bitmap, l1i, idx));
            CO_TRY(co_await read_subclusters(guest, entry, bitmap, qiov.slice(pos, run)));
            pos += run;
            continue;
        }
        // Extend over following clusters of the same L2 table that read
        // the same way (contiguous host clusters for data).
        if (type != ClusterType::Compressed) {
            uint64_t i = idx + 1;
            while (pos + run < len && i < m_l2_entries) {
                uint64_t next = table ? l2_get(*table, i) : 0;
                ClusterType nt = type_of(next);
                bool same;
                if (type == ClusterType::Normal)
                    same = nt == ClusterType::Normal
                           && (next & k_l2e_offset_mask) == (entry & k_l2e_offset_mask) + (i - idx) * m_cluster_size
                           && check_data_file_entry(guest + (i - idx) * m_cluster_size, next, l1i).ok();
                else if (type == ClusterType::Unallocated)
                    same = nt == ClusterType::Unallocated;
                else
                    same = nt == ClusterType::ZeroPlain || nt == ClusterType::ZeroAlloc;
                if (!same)
                    break;
                run += std::min(len - pos - run, m_cluster_size);
                ++i;
            }
        }
        QIov part = qiov.slice(pos, run);
        switch (type) {
        case ClusterType::Unallocated:
            CO_TRY(co_await read_backing(guest, part));
            break;
        case ClusterType::ZeroPlain:
        case ClusterType::ZeroAlloc:
            part.fill(0, 0, run);
            break;
        case ClusterType::Normal: {
            CO_TRY(check_data_offset(entry, m_cluster_size, m_data_file != nullptr));
            CO_TRY(co_await read_data((entry & k_l2e_offset_mask) + in, guest, part));
            break;
        }
        case ClusterType::Compressed: {
            std::vector<uint8_t> buf(m_cluster_size);
            CO_TRY(co_await read_compressed(entry, buf.data()));
            part.copy_in(0, buf.data() + in, run);
            break;
        }
        }
        pos += run;
    }
    co_return ok();
}

Task<Result<void>> Qcow2Node::read_cluster_content(uint64_t guest_cluster, uint64_t entry, uint64_t from,
                                                   uint64_t len, uint8_t* out)
{
    if (len == 0)
        co_return ok();
    switch (type_of(entry)) {
    case ClusterType::Unallocated:
        CO_TRY(co_await read_backing(guest_cluster + from, QIov(out, len)));
        break;
    case ClusterType::ZeroPlain:
    case ClusterType::ZeroAlloc:
        std::memset(out, 0, len);
        break;
    case ClusterType::Normal:
        CO_TRY(check_data_offset(entry, m_cluster_size, m_data_file != nullptr));
        CO_TRY(co_await read_data((entry & k_l2e_offset_mask) + from, guest_cluster + from, QIov(out, len)));
        break;
    case ClusterType::Compressed: {
        std::vector<uint8_t> buf(m_cluster_size);
        CO_TRY(co_await read_compressed(entry, buf.data()));
        std::memcpy(out, buf.data() + from, len);
        break;
    }
    }
    co_return ok();
}

Task<Result<BlockStatus>> Qcow2Node::block_status(uint64_t offset, uint64_t bytes)
{
    BlockStatus s;
    if (bytes == 0 || offset >= m_size) {
        s.bytes = bytes;
        co_return s;
    }
    bytes = std::min(bytes, m_size - offset);
    TablePtr table = CO_TRY(co_await l2_table_for_read(l1_index(offset)));
    uint64_t idx = l2_index(offset);
    uint64_t in = offset_in_cluster(offset);
    uint64_t entry = table ? l2_get(*table, idx) : 0;
    ClusterType type = type_of(entry);
    uint64_t run = std::min(bytes, m_cluster_size - in);
    CO_TRY(check_data_file_entry(offset, entry, l1_index(offset)));
    if (m_ext_l2 && type != ClusterType::Compressed) {
        uint64_t bitmap = table ? l2_bitmap(*table, idx) : 0;
        CO_TRY(check_subcluster_bitmap(entry, bitmap, l1_index(offset), idx));
        co_return subcluster_status(offset, entry, bitmap, run);
    }
    for (uint64_t i = idx + 1; run < bytes && i < m_l2_entries; ++i) {
        uint64_t next = table ? l2_get(*table, i) : 0;
        ClusterType nt = type_of(next);
        bool same = nt == type;
        if (same && (type == ClusterType::Normal || type == ClusterType::ZeroAlloc))
            same = (next & k_l2e_offset_mask) == (entry & k_l2e_offset_mask) + (i - idx) * m_cluster_size;
        if (same && type == ClusterType::Compressed)
            same = false;
        if (!same)
            break;
        run += std::min(bytes - run, m_cluster_size);
    }
    s.bytes = run;
    switch (type) {
    case ClusterType::Unallocated:
        if (!m_backing)
            s.flags = BlockStatus::Zero;
        break;
    case ClusterType::ZeroPlain:
        s.flags = BlockStatus::Zero | BlockStatus::Allocated;
        break;
    case ClusterType::ZeroAlloc:
        s.flags = BlockStatus::Zero | BlockStatus::Allocated | BlockStatus::OffsetValid;
        s.host_offset = (entry & k_l2e_offset_mask) + in;
        s.host_node = data_node();
        break;
    case ClusterType::Normal:
        s.flags = BlockStatus::Data | BlockStatus::Allocated | BlockStatus::OffsetValid;
        s.host_offset = (entry & k_l2e_offset_mask) + in;
        s.host_node = data_node();
        break;
    case ClusterType::Compressed:
        s.flags = BlockStatus::Data | BlockStatus::Allocated;
        s.compressed = true;
        break;
    }
    if (encrypted() && (s.flags & BlockStatus::OffsetValid)) {
        // The host bytes are ciphertext: no one may read them raw (map).
        s.flags &= ~uint32_t(BlockStatus::OffsetValid);
        s.host_node = nullptr;
        s.host_offset = 0;
    }
    co_return s;
}

// Subcluster kinds of an extended L2 entry.
enum class SubKind { Data, Zero, Backing };

static SubKind sub_kind(uint64_t bitmap, uint64_t sc)
{
    if (bitmap & (1ull << sc))
        return SubKind::Data;
    if (bitmap & (1ull << (32 + sc)))
        return SubKind::Zero;
    return SubKind::Backing;
}

Task<Result<void>> Qcow2Node::read_subclusters(uint64_t guest, uint64_t entry, uint64_t bitmap, QIov qiov)
{
    uint64_t sc_size = m_cluster_size / 32;
    uint64_t host = entry & k_l2e_offset_mask;
    uint64_t len = qiov.size();
    uint64_t pos = 0;
    while (pos < len) {
        uint64_t in = offset_in_cluster(guest + pos);
        uint64_t sc = in / sc_size;
        SubKind kind = sub_kind(bitmap, sc);
        uint64_t run = std::min(len - pos, (sc + 1) * sc_size - in);
        while (pos + run < len && sub_kind(bitmap, (in + run) / sc_size) == kind)
            run += std::min(len - pos - run, sc_size);
        QIov part = qiov.slice(pos, run);
        if (kind == SubKind::Zero) {
            part.fill(0, 0, run);
        } else if (kind == SubKind::Backing) {
            CO_TRY(co_await read_backing(guest + pos, part));
        } else {
            if (type_of(entry) != ClusterType::Normal)
                co_return Error::corrupt("Corrupt image: allocated subcluster in an unallocated cluster");
            CO_TRY(check_data_offset(entry, m_cluster_size, m_data_file != nullptr));
            CO_TRY(co_await read_data(host + in, guest + pos, part));
        }
        pos += run;
    }
    co_return ok();
}

BlockStatus Qcow2Node::subcluster_status(uint64_t guest, uint64_t entry, uint64_t bitmap, uint64_t bytes) const
{
    uint64_t sc_size = m_cluster_size / 32;
    uint64_t in = offset_in_cluster(guest);
    uint64_t sc = in / sc_size;
    SubKind kind = sub_kind(bitmap, sc);
    uint64_t run = std::min(bytes, (sc + 1) * sc_size - in);
    while (run < bytes && sub_kind(bitmap, (in + run) / sc_size) == kind)
        run += std::min(bytes - run, sc_size);
    BlockStatus s;
    s.bytes = run;
    uint64_t host = entry & k_l2e_offset_mask;
    if (kind == SubKind::Data) {
        s.flags = BlockStatus::Data | BlockStatus::Allocated | BlockStatus::OffsetValid;
        s.host_offset = host + in;
        s.host_node = data_node();
    } else if (kind == SubKind::Zero) {
        s.flags = BlockStatus::Zero | BlockStatus::Allocated;
    } else if (!m_backing) {
        s.flags = BlockStatus::Zero;
    }
    return s;
}

} // namespace kiln::block::qcow2
