#include "block/file/lock.h"

#include <fcntl.h>

#include <cerrno>

namespace kiln::block {

const char* block_perm_name(uint64_t bit)
{
    switch (bit) {
    case k_perm_consistent_read:
        return "consistent read";
    case k_perm_write:
        return "write";
    case k_perm_write_unchanged:
        return "write unchanged";
    case k_perm_resize:
        return "resize";
    case k_perm_graph_mod:
        return "change children";
    }
    return "unknown";
}

static int lock_byte(int fd, int offset, short type)
{
    struct flock fl { };
    fl.l_whence = SEEK_SET;
    fl.l_start = offset;
    fl.l_len = 1;
    fl.l_type = type;
    return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

// True if another open file description holds a lock on the byte.
static Result<bool> byte_locked_by_other(int fd, int offset, const std::string& filename)
{
    struct flock fl { };
    fl.l_whence = SEEK_SET;
    fl.l_start = offset;
    fl.l_len = 1;
    fl.l_type = F_WRLCK;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        return Error::from_errno(
            errno, "Failed to check lock byte " + std::to_string(offset) + " of '" + filename + "'");
    return fl.l_type != F_UNLCK;
}

static Error lock_error(const std::string& what, const char* perm_name, const std::string& filename)
{
    return Error(ErrorKind::Locked,
        "Failed to get " + what + "\"" + perm_name + "\" lock\nIs another process using the image [" + filename + "]?",
        EAGAIN);
}

Result<void> apply_lock_bytes(
    int fd, uint64_t perm, uint64_t shared, uint64_t& held_perm, uint64_t& held_unshared, const std::string& filename)
{
    uint64_t unshared = ~shared & k_perm_all;
    for (int i = 0; i < 5; ++i) {
        uint64_t bit = 1ull << i;
        struct Range {
            int base;
            uint64_t want;
            uint64_t& held;
        } ranges[] = { { k_lock_perm_base, perm, held_perm }, { k_lock_shared_base, unshared, held_unshared } };
        for (auto& r : ranges) {
            if (r.want & bit) {
                if (!(r.held & bit)) {
                    if (lock_byte(fd, r.base + i, F_RDLCK) != 0)
                        return lock_error(r.base == k_lock_perm_base ? "" : "shared ", block_perm_name(bit), filename);
                    r.held |= bit;
                }
            } else if (r.held & bit) {
                lock_byte(fd, r.base + i, F_UNLCK);
                r.held &= ~bit;
            }
        }
    }
    return ok();
}

Result<void> check_lock_bytes(int fd, uint64_t perm, uint64_t shared, const std::string& filename)
{
    // Two passes in QEMU's order, so the first conflict reported is the
    // same one qemu-img would report.
    for (int i = 0; i < 5; ++i) {
        uint64_t bit = 1ull << i;
        if ((perm & bit) && TRY(byte_locked_by_other(fd, k_lock_shared_base + i, filename)))
            return lock_error("", block_perm_name(bit), filename);
    }
    for (int i = 0; i < 5; ++i) {
        uint64_t bit = 1ull << i;
        if (!(shared & bit) && TRY(byte_locked_by_other(fd, k_lock_perm_base + i, filename)))
            return lock_error("shared ", block_perm_name(bit), filename);
    }
    return ok();
}

} // namespace kiln::block
