// qcow2 image creation with qemu-img 7.2's options and layout: header in
// cluster 0, refcount table in cluster 1, first refcount block in cluster 2,
// then the L1 table.
#pragma once

#include "block/context.h"

namespace kiln::block::qcow2 {

Task<Result<void>> create_image(BlockContext& ctx, const std::string& filename, uint64_t size_bytes,
                                const OptionList& options);
std::vector<CreateOptionInfo> create_options();

} // namespace kiln::block::qcow2
