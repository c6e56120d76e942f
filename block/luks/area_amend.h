// Runs a LUKS key slot amendment (block/crypto/luks_amend.h) against a
// LUKS area stored in a file: reads the area, looks the secrets up, plans
// off the event loop, then writes in the planned order with a flush after
// each write. Shared by the `luks` format and qcow2's encrypt.format=luks.
#pragma once

#include "block/context.h"
#include "block/crypto/luks_amend.h"

namespace kiln::block {

struct LuksAreaLocation {
    uint64_t offset_bytes = 0; // where the LUKS header starts in `file`
    uint64_t length_bytes = 0; // bytes of header + key material that may be read and written
};

// Returns the header as it is on disk afterwards. On a write error the
// header on disk may be the old or the new one (each write is whole and
// ordered so that either is consistent).
Task<Result<crypto::LuksHeader>> amend_luks_area(BlockContext& ctx, BlockNode& file, LuksAreaLocation where,
    const crypto::LuksHeader& header, const crypto::LuksAmendOptions& options, const std::string& unlock_secret_id,
    AmendFlags flags);

} // namespace kiln::block
