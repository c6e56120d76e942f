#include "block/commit.h"

#include <algorithm>
#include <cerrno>
#include <vector>

namespace kiln::block {

namespace {

constexpr uint64_t k_chunk_bytes = 1 << 20;

// Copies every range `top` itself allocates (its backing not consulted)
// into `base`: data as data, zero ranges as zero writes.
Task<Result<void>> copy_allocated(BlockNode& top, BlockNode& base)
{
    uint64_t size = top.size_bytes();
    std::vector<uint8_t> buf;
    for (uint64_t off = 0; off < size;) {
        uint64_t run = std::min(k_chunk_bytes, size - off);
        BlockStatus st = CO_TRY(co_await top.block_status(off, run));
        run = std::clamp<uint64_t>(st.bytes, 1, run);
        if (st.flags & BlockStatus::Allocated) {
            if (st.flags & BlockStatus::Zero) {
                CO_TRY(co_await base.pwrite_zeroes(off, run, RequestFlags::MayUnmap));
            } else {
                buf.resize(run);
                CO_TRY(co_await top.preadv(off, QIov(buf.data(), run)));
                CO_TRY(co_await base.pwritev(off, QIov(buf.data(), run), RequestFlags::None));
            }
        }
        off += run;
    }
    co_return co_await base.flush();
}

Task<Result<void>> copy_and_empty(BlockNode& top, BlockNode& base)
{
    if (base.size_bytes() < top.size_bytes())
        CO_TRY(co_await base.truncate(top.size_bytes(), PreallocMode::Off, false));
    CO_TRY(co_await copy_allocated(top, base));
    CO_TRY(co_await top.make_empty());
    co_return co_await top.flush();
}

} // namespace

Task<Result<void>> commit_into_backing(BlockNode& top)
{
    BlockNode* base = top.backing();
    if (!base)
        co_return Error::not_supported("'" + top.filename() + "' has no backing file");
    if (top.read_only())
        co_return Error(ErrorKind::PermissionDenied, "'" + top.filename() + "' is read-only", EACCES);
    bool reopened = false;
    if (base->read_only()) {
        auto r = co_await base->reopen(true);
        if (!r)
            co_return Error(ErrorKind::PermissionDenied, r.error().message(), EACCES);
        reopened = true;
    }
    auto result = co_await copy_and_empty(top, *base);
    if (reopened) {
        auto back = co_await base->reopen(false);
        if (!back && result)
            result = std::move(back);
    }
    co_return result;
}

} // namespace kiln::block
