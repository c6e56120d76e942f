// qcow2 image creation with qemu-img 7.2's options and layout: header in
// cluster 0, refcount table in cluster 1, first refcount block in cluster 2,
// then the L1 table.
#pragma once

#include "block/context.h"

namespace kiln::block::qcow2 {

Task<Result<void>> create_image(BlockContext& ctx, const std::string& filename, uint64_t size_bytes,
                                const OptionList& options);
std::vector<CreateOptionInfo> create_options();
// Refuses encrypt.* options whose secret is missing, before any file is
// created (encryption.cpp).
Result<void> check_encryption_secret(BlockContext& ctx, const OptionList& options);

// Formats an opened, empty protocol node as qcow2 (options as for create,
// plus "size") and returns the image opened read-write without its backing
// chain. Used by create_image and by tests on in-memory nodes.
Task<Result<std::unique_ptr<BlockNode>>> format_node(BlockContext& ctx, std::unique_ptr<BlockNode> file,
                                                     const std::string& filename, const OptionList& options);

} // namespace kiln::block::qcow2
