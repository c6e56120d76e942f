// FileNode::reopen: read-only <-> read-write on an open file (the monitor's
// commit writes into a backing file the guest's drive opened read-only).
//
// A descriptor's access mode cannot change, so a new one is opened and
// replaces the old. OFD locks belong to the open file description: the old
// descriptor's bytes are released first (otherwise they would conflict with
// our own new ones), the new descriptor takes the new set, and on failure
// the old set is taken back, leaving the node as it was.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "block/file/file_node.h"

namespace kiln::block {

Task<Result<void>> FileNode::reopen(bool read_write)
{
    if (read_write == !read_only())
        co_return ok();
    if (!read_write)
        CO_TRY(co_await flush());
    // Requests still in the kernel use the old descriptor.
    while (m_busy.count() > 0)
        co_await m_busy.wait_idle();
    int mode = (read_write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (m_direct)
        mode |= O_DIRECT;
    int fd;
    do {
        fd = ::open(m_filename.c_str(), mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        co_return Error::from_errno(errno, "Could not reopen '" + m_filename + "'");
    uint64_t perm = read_write ? (m_perm | k_perm_write) : (m_perm & ~uint64_t(k_perm_write | k_perm_resize));
    if (m_locking) {
        uint64_t held_perm = 0, held_unshared = 0;
        (void)apply_lock_bytes(m_fd, 0, k_perm_all, m_held_perm, m_held_unshared, m_filename);
        auto r = apply_lock_bytes(fd, perm, m_shared, held_perm, held_unshared, m_filename);
        if (r)
            r = check_lock_bytes(fd, perm, m_shared, m_filename);
        if (!r) {
            ::close(fd); // drops whatever the new descriptor took
            // Only bytes we held a moment ago: cannot fail for a new reason.
            (void)apply_lock_bytes(m_fd, m_perm, m_shared, m_held_perm, m_held_unshared, m_filename);
            co_return std::move(r).error();
        }
        m_held_perm = held_perm;
        m_held_unshared = held_unshared;
    }
    ::close(m_fd);
    m_fd = fd;
    m_perm = perm;
    set_read_only(!read_write);
    co_return ok();
}

} // namespace kiln::block
