// Image locking compatible with QEMU's file-posix driver: OFD locks on
// single bytes. A process holds a shared lock on byte 100+bit for each
// permission it uses and on byte 200+bit for each permission it does not
// let others use. An open conflicts when someone else holds 200+bit for a
// permission it wants, or 100+bit for one it refuses to share.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace kiln::block {

// BLK_PERM_* bits in QEMU's order.
enum BlockPerm : uint64_t {
    k_perm_consistent_read = 1u << 0,
    k_perm_write = 1u << 1,
    k_perm_write_unchanged = 1u << 2,
    k_perm_resize = 1u << 3,
    k_perm_graph_mod = 1u << 4,
    k_perm_all = 0x1f,
};

constexpr int k_lock_perm_base = 100;
constexpr int k_lock_shared_base = 200;

// QEMU's name of one permission bit ("write", "consistent read", ...).
const char* block_perm_name(uint64_t bit);

// Locks byte 100+bit for each bit in `perm` and 200+bit for each bit not in
// `shared`; unlocks the other bytes of both ranges that `held_*` says we
// hold. Updates held_* to what is now held.
Result<void> apply_lock_bytes(
    int fd, uint64_t perm, uint64_t shared, uint64_t& held_perm, uint64_t& held_unshared, const std::string& filename);

// Fails with QEMU's message if another open file holds a conflicting byte.
Result<void> check_lock_bytes(int fd, uint64_t perm, uint64_t shared, const std::string& filename);

} // namespace kiln::block
