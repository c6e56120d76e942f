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
