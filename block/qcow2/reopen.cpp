// Qcow2Node::reopen: the monitor's commit writes into a backing image the
// drive opened read-only, so a qcow2 backing switches to read-write for the
// copy and back afterwards.
#include <algorithm>

#include "block/qcow2/qcow2_node.h"

namespace kiln::block::qcow2 {

Task<Result<void>> Qcow2Node::reopen(bool read_write)
{
    if (read_write == !read_only())
        co_return ok();
    if (!read_write) {
        // As close does: metadata committed, the lazy_refcounts dirty bit
        // cleared, then the files give their write access back.
        CO_TRY(co_await store_bitmaps()); // bitmaps.cpp, as close does
        CO_TRY(co_await flush());
        CO_TRY(co_await mark_clean_on_close());
        set_read_only(true);
        if (m_data_file)
            CO_TRY(co_await m_data_file->reopen(false));
        co_return co_await m_file->reopen(false);
    }
    if (m_snapshot_loaded)
        co_return Error::not_supported("Cannot write to an image with a snapshot loaded");
    if (m_header.incompatible_features & k_incompat_corrupt)
        co_return Error(ErrorKind::PermissionDenied, "qcow2: Image is corrupt; cannot be opened read/write", EACCES);
    // A read-write open repairs a dirty image and drops stale bitmaps; a
    // reopen does neither, so such images refuse. Valid bitmaps are loaded
    // and tracked below, as a read-write open does.
    if (m_header.incompatible_features & k_incompat_dirty)
        co_return Error::not_supported("qcow2: Image has the dirty bit set; repair it before writing");
    if ((m_bitmap_ext ? 0 : m_header.autoclear_features & k_autoclear_bitmaps)
        || (m_header.autoclear_features & ~(k_autoclear_data_file_raw | k_autoclear_bitmaps))
        || (!m_bitmap_ext && std::any_of(m_header.other_extensions.begin(), m_header.other_extensions.end(),
                                         [](const RawExtension& e) { return e.type == k_ext_bitmaps; })))
        co_return Error::not_supported("qcow2: Reopening an image with persistent bitmaps read-write is not supported");
    CO_TRY(co_await m_file->reopen(true));
    if (m_data_file) {
        if (auto r = co_await m_data_file->reopen(true); !r) {
            (void)co_await m_file->reopen(false);
            co_return r;
        }
    }
    set_read_only(false);
    if (auto r = co_await start_bitmap_tracking(); !r) {
        set_read_only(true);
        (void)co_await m_file->reopen(false);
        co_return r;
    }
    co_return ok();
}

} // namespace kiln::block::qcow2
