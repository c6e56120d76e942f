#include "block/raw/raw_node.h"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace kiln::block {

Result<std::unique_ptr<RawNode>> RawNode::open(
    BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec)
{
    // Options of QEMU's generic block layer, handled above the driver.
    static const char* const k_generic[] = { "driver", "node-name", "read-only", "auto-read-only", "force-share",
        "discard", "detect-zeroes", "cache.direct", "cache.no-flush", "offset", "size", "filename" };
    for (auto& [key, value] : spec.options.entries()) {
        if (key.rfind("file.", 0) == 0 || key == "file")
            continue;
        if (std::find(std::begin(k_generic), std::end(k_generic), key) == std::end(k_generic))
            return Error::invalid("Block format 'raw' does not support the option '" + key + "'");
    }
    std::unique_ptr<RawNode> node(new RawNode(ctx));
    uint64_t file_size = file->size_bytes();
    auto offset = TRY(spec.options.get_size("offset"));
    auto size = TRY(spec.options.get_size("size"));
    node->m_offset_bytes = offset.value_or(0);
    if (node->m_offset_bytes > file_size)
        return Error::invalid("Offset (" + std::to_string(node->m_offset_bytes)
            + ") cannot be greater than size of the containing file (" + std::to_string(file_size) + ")");
    if (size) {
        if (*size > file_size - node->m_offset_bytes)
            return Error::invalid("The sum of offset (" + std::to_string(node->m_offset_bytes) + ") and size ("
                + std::to_string(*size) + ") has to be smaller or equal to the  actual size of the containing file ("
                + std::to_string(file_size) + ")");
        if (*size % 512)
            return Error::invalid("Specified size is not multiple of 512");
        node->m_fixed_size_bytes = size;
    }
    node->set_read_only(file->read_only());
    node->m_file = std::move(file);
    return node;
}

uint64_t RawNode::size_bytes() const
{
    if (m_fixed_size_bytes)
        return *m_fixed_size_bytes;
    uint64_t file_size = m_file->size_bytes();
    return file_size > m_offset_bytes ? file_size - m_offset_bytes : 0;
}

Task<Result<void>> RawNode::preadv(uint64_t offset, QIov qiov)
{
    co_return co_await m_file->preadv(m_offset_bytes + offset, std::move(qiov));
}

Task<Result<void>> RawNode::check_block0_write(uint64_t offset, const QIov& qiov)
{
    constexpr uint64_t k_block0_bytes = 512;
    std::vector<uint8_t> block0(k_block0_bytes);
    uint64_t end = std::min(offset + qiov.size(), k_block0_bytes);
    if (offset > 0 || end < k_block0_bytes)
        CO_TRY(co_await preadv(0, QIov(block0.data(), block0.size())));
    qiov.copy_out(0, block0.data() + offset, end - offset);
    for (auto* driver : context().formats()) {
        if (driver->name == "raw" || !driver->probe)
            continue;
        if (driver->probe(block0, filename()) > 1)
            co_return Error(ErrorKind::PermissionDenied, "Operation not permitted", EPERM);
    }
    co_return ok();
}

Task<Result<void>> RawNode::pwritev(uint64_t offset, QIov qiov, RequestFlags flags)
{
    if (m_probed && offset < 512 && !qiov.empty())
        CO_TRY(co_await check_block0_write(offset, qiov));
    if (m_fixed_size_bytes && offset + qiov.size() > *m_fixed_size_bytes)
        co_return Error::invalid("Write past the end of the raw window of '" + filename() + "'");
    co_return co_await m_file->pwritev(m_offset_bytes + offset, std::move(qiov), flags);
}

Task<Result<void>> RawNode::pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    co_return co_await m_file->pwrite_zeroes(m_offset_bytes + offset, bytes, flags);
}

Task<Result<void>> RawNode::pdiscard(uint64_t offset, uint64_t bytes)
{
    co_return co_await m_file->pdiscard(m_offset_bytes + offset, bytes);
}

Task<Result<BlockStatus>> RawNode::block_status(uint64_t offset, uint64_t bytes)
{
    // The file's answer, with its offsets (which include ours) kept as
    // host offsets: raw maps guest offset o to file offset o + offset.
    co_return co_await m_file->block_status(m_offset_bytes + offset, bytes);
}

Task<Result<void>> RawNode::truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok)
{
    if (m_fixed_size_bytes || m_offset_bytes)
        co_return Error::not_supported("Cannot resize fixed-size raw disks");
    co_return co_await m_file->truncate(new_size, prealloc, shrink_ok);
}

} // namespace kiln::block

namespace kiln::block {

Task<Result<void>> RawNode::reopen(bool read_write)
{
    CO_TRY(co_await m_file->reopen(read_write));
    set_read_only(!read_write);
    co_return ok();
}

} // namespace kiln::block
