// Compressed clusters: zlib raw deflate (window bits -12) or zstd, as
// selected by the header's compression_type.
#include <zlib.h>
#include <zstd.h>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

static Result<void> inflate_raw(std::span<const uint8_t> in, std::span<uint8_t> out)
{
    z_stream s{};
    if (inflateInit2(&s, -12) != Z_OK)
        return Error::internal("qcow2: cannot initialise zlib");
    s.next_in = const_cast<Bytef*>(in.data());
    s.avail_in = uInt(in.size());
    s.next_out = out.data();
    s.avail_out = uInt(out.size());
    int ret = inflate(&s, Z_FINISH);
    bool good = (ret == Z_STREAM_END || ret == Z_BUF_ERROR) && s.avail_out == 0;
    inflateEnd(&s);
    if (!good)
        return Error::corrupt("qcow2: could not decompress cluster (zlib)");
    return ok();
}

static Result<void> zstd_decompress(std::span<const uint8_t> in, std::span<uint8_t> out)
{
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    if (!ctx)
        return Error::internal("qcow2: cannot initialise zstd");
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    bool good = true;
    // The compressed size is rounded up to sectors: stop when the output
    // cluster is full, whatever padding follows the frame.
    while (ob.pos < ob.size) {
        size_t ret = ZSTD_decompressStream(ctx, &ob, &ib);
        if (ZSTD_isError(ret)) {
            good = false;
            break;
        }
        if (ret == 0 && ob.pos < ob.size) {
            // Frame ended early.
            good = false;
            break;
        }
        if (ib.pos == ib.size && ob.pos < ob.size && ret != 0) {
            good = false;
            break;
        }
    }
    ZSTD_freeDCtx(ctx);
    if (!good)
        return Error::corrupt("qcow2: could not decompress cluster (zstd)");
    return ok();
}

Result<void> decompress_cluster(uint8_t type, std::span<const uint8_t> in, std::span<uint8_t> out)
{
    if (type == k_compression_zlib)
        return inflate_raw(in, out);
    if (type == k_compression_zstd)
        return zstd_decompress(in, out);
    return Error::not_supported("qcow2: unknown compression type");
}

Task<Result<void>> Qcow2Node::read_compressed(uint64_t entry, uint8_t* out)
{
    uint64_t coffset = entry & m_compressed_offset_mask;
    uint64_t sectors = ((entry >> m_compressed_shift) & m_compressed_mask) + 1;
    uint64_t csize = sectors * 512 - (coffset & 511);
    std::vector<uint8_t> in(csize);
    CO_TRY(co_await read_clamped(*m_file, coffset, in.data(), in.size()));
    CO_TRY(decompress_cluster(m_header.compression_type, in, std::span<uint8_t>(out, m_cluster_size)));
    co_return ok();
}

} // namespace kiln::block::qcow2

namespace kiln::block::qcow2 {

Result<size_t> compress_cluster(uint8_t type, std::span<const uint8_t> in, std::span<uint8_t> out)
{
    if (type == k_compression_zstd) {
        size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(n))
            return Error{ErrorKind::NoSpace, "does not compress", ENOSPC};
        return n;
    }
    z_stream s{};
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return Error::internal("qcow2: cannot initialise zlib");
    s.next_in = const_cast<Bytef*>(in.data());
    s.avail_in = uInt(in.size());
    s.next_out = out.data();
    s.avail_out = uInt(out.size());
    int ret = deflate(&s, Z_FINISH);
    size_t n = out.size() - s.avail_out;
    deflateEnd(&s);
    if (ret != Z_STREAM_END)
        return Error{ErrorKind::NoSpace, "does not compress", ENOSPC};
    return n;
}

Task<Result<uint64_t>> Qcow2Node::alloc_bytes(uint64_t size)
{
    // Compressed data is packed: a cluster holds several compressed
    // clusters, and its refcount counts them.
    uint64_t in = offset_in_cluster(m_free_byte_offset);
    if (m_free_byte_offset && in && size <= m_cluster_size - in) {
        uint64_t at = m_free_byte_offset;
        CO_TRY(co_await change_refcount(at >> m_cluster_bits, 1));
        m_free_byte_offset = (in + size == m_cluster_size) ? 0 : at + size;
        co_return at;
    }
    uint64_t host = CO_TRY(co_await alloc_clusters(1));
    m_free_byte_offset = size == m_cluster_size ? 0 : host + size;
    co_return host;
}

Task<Result<void>> Qcow2Node::pwritev_compressed(uint64_t offset, QIov qiov)
{
    if (read_only() || m_snapshot_loaded)
        co_return Error{ErrorKind::PermissionDenied, "Block node is read-only", EPERM};
    if (encrypted()) // as QEMU: compressed clusters are never encrypted
        co_return Error{ErrorKind::NotSupported, "Input/output error", EIO};
    note_guest_write(offset, qiov.size());
    uint64_t len = qiov.size();
    if (offset_in_cluster(offset) || (len != m_cluster_size && offset + len != m_size) || len > m_cluster_size)
        co_return Error::invalid("qcow2: compressed writes must cover whole clusters");
    std::vector<uint8_t> plain(m_cluster_size, 0);
    qiov.copy_out(0, plain.data(), len);
    std::vector<uint8_t> packed(m_cluster_size - 1);
    uint8_t type = m_header.compression_type;
    auto csize = co_await context().pool().run(
        [&] { return compress_cluster(type, plain, packed); });
    if (!csize) {
        // Incompressible: store it as a normal cluster.
        co_return co_await pwritev(offset, qiov, RequestFlags::None);
    }
    uint64_t first = offset >> m_cluster_bits;
    CoEvent mine(context().loop());
    co_await lock_clusters(first, first + 1, mine);
    struct Unlock {
        Qcow2Node* self;
        CoEvent* ev;
        ~Unlock() { self->unlock_clusters(*ev); }
    } unlock{this, &mine};

    uint64_t host = 0;
    {
        auto guard = co_await co_lock(m_meta_lock);
        host = CO_TRY(co_await alloc_bytes(*csize));
    }
    auto w = co_await m_file->pwritev(host, QIov(packed.data(), *csize), RequestFlags::None);
    if (!w)
        co_return std::move(w).error(); // the bytes leak; nothing points at them
    uint64_t seq = note_write();
    auto guard = co_await co_lock(m_meta_lock);
    CO_TRY(co_await flush_covering(seq));
    uint64_t l1i = l1_index(offset);
    uint64_t idx = l2_index(offset);
    TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
    uint64_t before = l2_get(*table, idx);
    uint64_t extra_sectors = ((host + *csize - 1) >> 9) - (host >> 9);
    l2_set(*table, idx, k_oflag_compressed | (extra_sectors << m_compressed_shift) | host);
    auto lw = co_await m_l2_cache->write(*table, idx * 8, idx * 8 + 8);
    if (!lw) {
        l2_set(*table, idx, before);
        co_return std::move(lw).error();
    }
    note_write();
    ClusterType t = type_of(before);
    if (t == ClusterType::Normal || t == ClusterType::ZeroAlloc || t == ClusterType::Compressed) {
        CO_TRY(co_await flush_covering(m_write_seq));
        CO_TRY(co_await release_l2_entry(before));
    }
    co_return ok();
}

} // namespace kiln::block::qcow2
