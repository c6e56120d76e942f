// convert --bitmaps: copies the source's persistent bitmaps into the
// target after the data, as qemu-img 7.2 does. Each step prints qemu-img's
// message itself and returns false on failure.
#pragma once

#include "block/node.h"
#include "util/task.h"

namespace kiln::tools {

// Before the target is made: the source can hold bitmaps and none is
// inconsistent (unless --skip-broken-bitmaps).
bool convert_check_bitmaps(block::BlockNode& source, bool skip_broken);
// After the target is opened.
bool convert_target_takes_bitmaps(block::BlockNode& target);
// After the data: every bitmap, with its granularity and enabled state.
Task<bool> convert_copy_bitmaps(block::BlockNode& source, block::BlockNode& target, bool skip_broken);

} // namespace kiln::tools
