// Commit of a node into its backing file while the node stays open (QEMU's
// bdrv_commit, behind the monitor's `commit`): what the top node allocates
// is written into the backing node, which grows if smaller, and the top is
// then emptied so reads fall through to the backing file again.
#pragma once

#include "block/node.h"

namespace kiln::block {

// The caller keeps requests off `top` (drained, no new ones) for the whole
// call. A backing node opened read-only is reopened read-write for the
// copy and read-only again afterwards, success or not. Errors carry
// QEMU's errno: ENOTSUP without a backing file, EACCES when the backing
// file cannot be written (another process refuses writers; the message
// says which lock).
Task<Result<void>> commit_into_backing(BlockNode& top);

} // namespace kiln::block
