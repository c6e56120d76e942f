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

namespace {

// Compression state kept per pool thread: set up once, reset per cluster.
struct ThreadCompressors {
    z_stream zlib{};
    bool zlib_ready = false;
    ZSTD_CCtx* zstd = nullptr;
    ~ThreadCompressors()
    {
        if (zlib_ready)
            deflateEnd(&zlib);
        ZSTD_freeCCtx(zstd);
    }
};

thread_local ThreadCompressors t_compressors;

Error incompressible() { return Error{ErrorKind::NoSpace, "does not compress", ENOSPC}; }

} // namespace

Result<size_t> compress_cluster(uint8_t type, std::span<const uint8_t> in, std::span<uint8_t> out)
{
    ThreadCompressors& c = t_compressors;
    if (type == k_compression_zstd) {
        if (!c.zstd && !(c.zstd = ZSTD_createCCtx()))
            return Error::internal("qcow2: cannot initialise zstd");
        size_t n = ZSTD_compressCCtx(c.zstd, out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(n))
            return incompressible();
        return n;
    }
    // Early abort: deflate spends most of its time on data it then cannot
    // shrink (random or already compressed clusters, stored plain). zstd
    // at level 1 finds longer matches in a larger window and entropy-codes
    // literals too, at a tenth of the cost; when even it cannot save a
    // single byte, deflate's answer would be the same, so skip it.
    if (!c.zstd && !(c.zstd = ZSTD_createCCtx()))
        return Error::internal("qcow2: cannot initialise zstd");
    if (ZSTD_isError(ZSTD_compressCCtx(c.zstd, out.data(), out.size(), in.data(), in.size(), 1)))
        return incompressible();
    // Raw deflate with a 4 KiB window, as QEMU writes (and reads) it.
    if (!c.zlib_ready) {
        if (deflateInit2(&c.zlib, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
            return Error::internal("qcow2: cannot initialise zlib");
        c.zlib_ready = true;
    } else if (deflateReset(&c.zlib) != Z_OK) {
        return Error::internal("qcow2: cannot reset zlib");
    }
    z_stream& s = c.zlib;
    s.next_in = const_cast<Bytef*>(in.data());
    s.avail_in = uInt(in.size());
    s.next_out = out.data();
    s.avail_out = uInt(out.size());
    int ret = deflate(&s, Z_FINISH);
    size_t n = out.size() - s.avail_out;
    if (ret != Z_STREAM_END)
        return incompressible();
    return n;
}

Task<void> Qcow2Node::wait_compress_turn(uint64_t ticket)
{
    if (m_compress_turn == ticket)
        co_return;
    CoEvent mine(context().loop());
    m_compress_waiters[ticket] = &mine;
    co_await mine.wait();
}

void Qcow2Node::end_compress_turn()
{
    ++m_compress_turn;
    auto it = m_compress_waiters.find(m_compress_turn);
    if (it == m_compress_waiters.end())
        return;
    CoEvent* next = it->second;
    m_compress_waiters.erase(it);
    next->set();
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
    if (m_header.incompatible_features & k_incompat_data_file) // as QEMU: -ENOTSUP
        co_return Error{ErrorKind::NotSupported, "Operation not supported", ENOTSUP};
    note_guest_write(offset, qiov.size());
    uint64_t len = qiov.size();
    if (offset_in_cluster(offset) || (len != m_cluster_size && offset + len != m_size) || len > m_cluster_size)
        co_return Error::invalid("qcow2: compressed writes must cover whole clusters");
    // Clusters are placed in the file in the order the calls start, while
    // the compression of many of them runs in parallel on the pool.
    uint64_t ticket = m_compress_next_ticket++;
    std::vector<uint8_t> plain(m_cluster_size, 0);
    qiov.copy_out(0, plain.data(), len);
    std::vector<uint8_t> packed(m_cluster_size - 1);
    uint8_t type = m_header.compression_type;
    auto csize = co_await context().pool().run([&] { return compress_cluster(type, plain, packed); });
    co_await wait_compress_turn(ticket);
    struct EndTurn {
        Qcow2Node* self;
        bool held = true;
        void end()
        {
            if (held)
                self->end_compress_turn();
            held = false;
        }
        ~EndTurn() { end(); }
    } turn{this};
    uint64_t l1i = l1_index(offset);
    uint64_t idx = l2_index(offset);
    if (!csize) {
        // Incompressible: a normal cluster, written in place if it is one.
        TablePtr table = CO_TRY(co_await l2_table_for_read(l1i));
        if (table && (m_l1[l1i] & k_oflag_copied) && writable_in_place(l2_get(*table, idx), zero_flag())) {
            turn.end();
            co_return co_await pwritev(offset, qiov, RequestFlags::None);
        }
    }
    uint64_t first = offset >> m_cluster_bits;
    CoEvent mine(context().loop());
    co_await lock_clusters(first, first + 1, mine);
    struct Unlock {
        Qcow2Node* self;
        CoEvent* ev;
        ~Unlock() { self->unlock_clusters(*ev); }
    } unlock{this, &mine};

    // Only the allocation waits for the turn: the data writes of many
    // clusters run at once.
    uint64_t host = 0;
    {
        auto guard = co_await co_lock(m_meta_lock);
        // (No ?: around co_await: GCC 12 evaluates both arms there.)
        if (csize)
            host = CO_TRY(co_await alloc_bytes(*csize));
        else
            host = CO_TRY(co_await alloc_clusters(1));
    }
    turn.end();
    QIov data = csize ? QIov(packed.data(), *csize) : QIov(plain.data(), m_cluster_size);
    auto w = co_await m_file->pwritev(host, data, RequestFlags::None);
    if (!w) {
        // Nothing points at the new space: a whole cluster goes back, packed
        // bytes leak.
        if (!csize) {
            auto guard = co_await co_lock(m_meta_lock);
            (void)co_await set_refcounts(host >> m_cluster_bits, 1, 0);
        }
        co_return std::move(w).error();
    }
    note_write();
    auto guard = co_await co_lock(m_meta_lock);
    TablePtr table = CO_TRY(co_await l2_table_for_write(l1i));
    uint64_t before = l2_get(*table, idx);
    if (csize) {
        uint64_t extra_sectors = ((host + *csize - 1) >> 9) - (host >> 9);
        l2_set(*table, idx, k_oflag_compressed | (extra_sectors << m_compressed_shift) | host);
        l2_set_bitmap(*table, idx, 0); // must be 0 for compressed clusters
    } else {
        l2_set(*table, idx, host | k_oflag_copied);
        l2_set_bitmap(*table, idx, 0xffffffffull); // every subcluster written
    }
    mark_l2_dirty(*table, idx, 1);
    ClusterType t = type_of(before);
    if (t == ClusterType::Normal || t == ClusterType::ZeroAlloc || t == ClusterType::Compressed) {
        CO_TRY(co_await commit_metadata());
        CO_TRY(co_await release_l2_entry(before));
    }
    CO_TRY(co_await commit_if_full());
    co_return ok();
}

} // namespace kiln::block::qcow2
