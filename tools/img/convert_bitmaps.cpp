#include "tools/img/convert_bitmaps.h"

#include <cstdio>

#include "block/dirty_bitmap.h"
#include "tools/common/cli.h"

namespace kiln::tools {

bool convert_check_bitmaps(block::BlockNode& source, bool skip_broken)
{
    block::PersistentBitmaps* bitmaps = source.persistent_bitmaps();
    if (!bitmaps || !bitmaps->bitmaps_supported()) {
        report_error("Source lacks bitmap support");
        return false;
    }
    // QEMU walks its bitmap list newest first: the last one in the
    // directory is the first complained about.
    auto list = bitmaps->bitmaps();
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
        if (!skip_broken && it->inconsistent) {
            report_error("Cannot copy inconsistent bitmap '" + it->name + "'");
            std::fputs("Try --skip-broken-bitmaps, or use 'kiln-img bitmap --remove' to delete it\n", stderr);
            return false;
        }
    }
    return true;
}

bool convert_target_takes_bitmaps(block::BlockNode& target)
{
    block::PersistentBitmaps* bitmaps = target.persistent_bitmaps();
    if (!bitmaps || !bitmaps->bitmaps_supported()) {
        report_error("Format driver '" + std::string(target.driver_name()) + "' does not support bitmaps");
        return false;
    }
    return true;
}

Task<bool> convert_copy_bitmaps(block::BlockNode& source, block::BlockNode& target, bool skip_broken)
{
    block::PersistentBitmaps* src = source.persistent_bitmaps();
    block::PersistentBitmaps* dst = target.persistent_bitmaps();
    auto list = src->bitmaps();
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
        if (skip_broken && it->inconsistent) {
            report_warning("Skipping inconsistent bitmap '" + it->name + "'");
            continue;
        }
        auto added = dst->bitmap_add(it->name, it->granularity_bytes, !it->enabled);
        if (!added) {
            report_error("Failed to create bitmap " + it->name + ": " + added.error().message());
            co_return false;
        }
        auto bits = co_await src->bitmap_bits(it->name);
        auto merged = bits ? dst->bitmap_merge(it->name, *bits) : Result<void>(bits.error());
        if (!merged) {
            report_error("Failed to populate bitmap " + it->name + ": " + merged.error().message());
            (void)dst->bitmap_remove(it->name);
            co_return false;
        }
    }
    co_return true;
}

} // namespace kiln::tools
