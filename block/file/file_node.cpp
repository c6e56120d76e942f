// FileNode: opening, options, locking and the metadata operations
// (truncate, discard, zeroes, block status). Data I/O is in file_io.cpp.
#include "block/file/file_node.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "block/context.h"
#include "util/log.h"

namespace kiln::block {

Task<Result<std::unique_ptr<FileNode>>> FileNode::open(
    BlockContext& ctx, const std::string& filename, const OptionList& options, const OpenFlags& flags)
{
    std::unique_ptr<FileNode> node(new FileNode(ctx, filename));
    CO_TRY(node->parse_options(options, flags));
    CO_TRY(node->open_fd(flags));
    node->set_read_only(!flags.read_write);
    if (node->m_locking) {
        uint64_t perm = flags.no_io ? uint64_t(0) : uint64_t(k_perm_consistent_read);
        if (flags.read_write)
            perm |= k_perm_write;
        // Format drivers narrow `shared` once they know they need it (see
        // BlockContext::open_image); a bare protocol node shares everything.
        auto r = node->set_permissions(perm, k_perm_all);
        if (!r)
            co_return std::move(r).error();
    }
    CO_TRY(node->choose_engine());
    co_return std::move(node);
}

FileNode::FileNode(BlockContext& ctx, std::string filename)
    : BlockNode(ctx)
    , m_filename(std::move(filename))
    , m_busy(ctx.loop())
{
}

FileNode::~FileNode()
{
    m_engine.reset();
    if (m_fd >= 0)
        ::close(m_fd);
}

static Result<LockingMode> parse_locking(const std::string& value)
{
    if (value == "on")
        return LockingMode::On;
    if (value == "off")
        return LockingMode::Off;
    if (value == "auto")
        return LockingMode::Auto;
    return Error::invalid("invalid parameter value: " + value);
}

Result<void> FileNode::parse_options(const OptionList& options, const OpenFlags& flags)
{
    m_direct = cache_uses_o_direct(flags.cache);
    m_no_flush = flags.cache == CacheMode::Unsafe;
    m_writethrough = cache_is_writethrough(flags.cache);
    m_requested_engine = flags.aio;
    for (auto& [key, value] : options.entries()) {
        if (key == "driver") {
            if (value != "file" && value != "host_device")
                return Error::invalid("Unknown protocol '" + value + "'");
        } else if (key == "filename") {
            m_filename = value;
        } else if (key == "locking") {
            m_locking_mode = TRY(parse_locking(value));
        } else if (key == "aio") {
            auto engine = parse_aio_engine(value);
            if (!engine)
                return Error::invalid("invalid parameter value: " + value);
            m_requested_engine = engine;
        } else if (key == "cache.direct") {
            m_direct = TRY(parse_bool_option(key, value));
        } else if (key == "cache.no-flush") {
            m_no_flush = TRY(parse_bool_option(key, value));
        } else if (key == "discard" || key == "aio-max-batch" || key == "pr-manager" || key == "x-check-cache-dropped"
            || key == "drop-cache") {
            // Accepted for compatibility; Kiln always punches holes on discard.
        } else {
            return Error::invalid("Block protocol 'file' doesn't support the option '" + key + "'");
        }
        options.consume(key);
    }
    if (m_requested_engine == AioEngine::Native && !m_direct)
        return Error::invalid("aio=native was specified, but it requires cache.direct=on, which was not specified.");
    if (flags.force_share && flags.read_write)
        return Error::invalid("force-share=on can only be used with read-only images");
    // OFD locks work on every local file system Linux has; "auto" means on.
    m_locking = m_locking_mode != LockingMode::Off;
    return ok();
}

Result<void> FileNode::open_fd(const OpenFlags& flags)
{
    // O_NONBLOCK so that a FIFO cannot hang the open; cleared below.
    int mode = (flags.read_write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK;
    if (m_direct)
        mode |= O_DIRECT;
    do {
        m_fd = ::open(m_filename.c_str(), mode);
    } while (m_fd < 0 && errno == EINTR);
    if (m_fd < 0)
        return Error::from_errno(errno, "Could not open '" + m_filename + "'");
    struct stat st;
    if (fstat(m_fd, &st) != 0)
        return Error::from_errno(errno, "Could not open '" + m_filename + "'");
    if (S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
        return Error(
            ErrorKind::InvalidArgument, "'file' driver requires '" + m_filename + "' to be a regular file", EINVAL);
    fcntl(m_fd, F_SETFL, fcntl(m_fd, F_GETFL) & ~O_NONBLOCK);
    m_block_device = S_ISBLK(st.st_mode);
    m_regular_file = S_ISREG(st.st_mode);
    if (m_block_device) {
        off_t end = lseek(m_fd, 0, SEEK_END);
        if (end < 0)
            return Error::from_errno(errno, "Could not open '" + m_filename + "'");
        m_size_bytes = uint64_t(end);
    } else {
        m_size_bytes = uint64_t(st.st_size);
    }
    if (m_direct)
        probe_alignment();
    return ok();
}

void FileNode::probe_alignment()
{
    // QEMU falls back to 4096 when it cannot tell; so do we.
    m_request_align = 4096;
    m_mem_align = 4096;
    if (m_block_device) {
        int sector = 0;
        if (ioctl(m_fd, BLKSSZGET, &sector) == 0 && sector > 0)
            m_request_align = uint32_t(sector);
        return;
    }
#ifdef STATX_DIOALIGN
    struct statx stx { };
    if (statx(m_fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN)
        && stx.stx_dio_offset_align > 0) {
        m_request_align = stx.stx_dio_offset_align;
        m_mem_align = std::max<uint32_t>(stx.stx_dio_mem_align, 1);
    }
#endif
}

Result<void> FileNode::choose_engine()
{
    auto& ctx = context();
    AioEngine want = m_requested_engine.value_or(AioEngine::IoUring);
    if (want == AioEngine::Native) {
        m_engine = TRY(make_native_engine(ctx.loop(), ctx.pool()));
        return ok();
    }
    if (want == AioEngine::IoUring) {
        auto engine = make_uring_engine(ctx.loop());
        if (engine) {
            m_engine = std::move(engine).value();
            return ok();
        }
        if (m_requested_engine)
            Log::warning(engine.error().message() + "; using aio=threads for '" + m_filename + "'");
    }
    m_engine = ctx.shared_threads_engine();
    return ok();
}

Result<void> FileNode::set_permissions(uint64_t perm, uint64_t shared)
{
    if (!m_locking) {
        m_perm = perm;
        m_shared = shared;
        return ok();
    }
    uint64_t old_perm = m_perm, old_shared = m_shared;
    auto applied = apply_lock_bytes(m_fd, perm, shared, m_held_perm, m_held_unshared, m_filename);
    auto checked = applied ? check_lock_bytes(m_fd, perm, shared, m_filename) : ok();
    if (!applied || !checked) {
        // Restore the previous state; this only releases or re-takes bytes
        // we held a moment ago, so it cannot fail for a new reason.
        (void)apply_lock_bytes(m_fd, old_perm, old_shared, m_held_perm, m_held_unshared, m_filename);
        return applied ? std::move(checked).error() : std::move(applied).error();
    }
    m_perm = perm;
    m_shared = shared;
    return ok();
}

Result<uint64_t> FileNode::allocated_size() const
{
    struct stat st;
    if (fstat(m_fd, &st) != 0)
        return Error::from_errno(errno, "Could not stat '" + m_filename + "'");
    return uint64_t(st.st_blocks) * 512;
}

Task<Result<void>> FileNode::close()
{
    while (m_busy.count() > 0)
        co_await m_busy.wait_idle();
    if (!read_only())
        CO_TRY(co_await flush());
    co_return ok();
}

Task<Result<void>> FileNode::fallocate(int mode, uint64_t offset, uint64_t bytes)
{
    int fd = m_fd;
    Busy busy(m_busy);
    int r = co_await context().pool().run([=] {
        int ret;
        do {
            ret = ::fallocate(fd, mode, off_t(offset), off_t(bytes));
        } while (ret != 0 && errno == EINTR);
        return ret == 0 ? 0 : errno;
    });
    if (r != 0)
        co_return Error::from_errno(r, "Could not allocate space in '" + m_filename + "'");
    co_return ok();
}

// errno values by which fallocate says "not here" rather than "failed".
static bool fallocate_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOTSUP || err == EINVAL || err == ENOSYS || err == ENODEV;
}

Task<Result<void>> FileNode::pdiscard(uint64_t offset, uint64_t bytes)
{
    if (read_only())
        co_return Error(ErrorKind::PermissionDenied, "Cannot discard on read-only file '" + m_filename + "'", EPERM);
    if (bytes == 0)
        co_return ok();
    // Discard is advisory: a file system or device without hole punching
    // keeps the data. (On block devices PUNCH_HOLE is a discard.)
    auto r = co_await fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes);
    if (!r && !fallocate_unsupported(r.error().errno_value()))
        co_return r;
    co_return ok();
}

Task<Result<void>> FileNode::pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags)
{
    if (read_only())
        co_return Error(ErrorKind::PermissionDenied, "Cannot write to read-only file '" + m_filename + "'", EPERM);
    if (bytes == 0)
        co_return ok();
    {
        uint64_t end = offset + bytes;
        Result<void> r = Error::not_supported("no fallocate");
        if (has_flag(flags, RequestFlags::MayUnmap)) {
            // Holes read as zeroes; a punch cannot grow the file, so extend
            // it separately when the range goes past the end.
            uint64_t inside = offset < m_size_bytes ? std::min(end, m_size_bytes) - offset : 0;
            r = inside ? co_await fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, inside) : ok();
            if (r && end > m_size_bytes && m_regular_file) {
                if (::ftruncate(m_fd, off_t(end)) != 0)
                    co_return Error::from_errno(errno, "Could not resize '" + m_filename + "'");
                m_size_bytes = end;
            }
        }
        if (!r)
            r = co_await fallocate(FALLOC_FL_ZERO_RANGE, offset, bytes);
        if (r) {
            m_size_bytes = std::max(m_size_bytes, end);
            co_return co_await after_write(end, flags);
        }
        if (!fallocate_unsupported(r.error().errno_value()))
            co_return r;
    }
    if (has_flag(flags, RequestFlags::NoFallback))
        co_return Error::not_supported("Efficient zero writing is not supported by '" + m_filename + "'");
    co_return co_await write_zeroes_by_writing(offset, bytes);
}

Task<Result<BlockStatus>> FileNode::block_status(uint64_t offset, uint64_t bytes)
{
    BlockStatus s;
    s.flags = BlockStatus::Data | BlockStatus::Allocated | BlockStatus::OffsetValid;
    s.bytes = bytes;
    s.host_offset = offset;
    s.host_node = this;
    if (m_block_device || bytes == 0)
        co_return s;
    off_t data = lseek(m_fd, off_t(offset), SEEK_DATA);
    if (data < 0) {
        if (errno != ENXIO)
            co_return s; // no SEEK_DATA support: everything is data
        // No data at or after offset: the rest is a hole (or past EOF).
        s.flags = BlockStatus::Zero | BlockStatus::Allocated | BlockStatus::OffsetValid;
        co_return s;
    }
    if (uint64_t(data) > offset) {
        s.flags = BlockStatus::Zero | BlockStatus::Allocated | BlockStatus::OffsetValid;
        s.bytes = std::min(bytes, uint64_t(data) - offset);
        co_return s;
    }
    off_t hole = lseek(m_fd, off_t(offset), SEEK_HOLE);
    if (hole > off_t(offset))
        s.bytes = std::min(bytes, uint64_t(hole) - offset);
    co_return s;
}

Task<Result<void>> FileNode::truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok)
{
    if (read_only())
        co_return Error(ErrorKind::PermissionDenied, "Cannot resize read-only file '" + m_filename + "'", EPERM);
    uint64_t old_size = m_size_bytes;
    if (m_block_device) {
        if (new_size > old_size)
            co_return Error::not_supported("Cannot grow device files");
        co_return ok();
    }
    if (new_size < old_size && !shrink_ok)
        co_return Error::invalid("Cannot shrink '" + m_filename + "' without allowing it");
    if (prealloc == PreallocMode::Metadata)
        co_return Error::not_supported("Unsupported preallocation mode: metadata");
    if (new_size < old_size && prealloc != PreallocMode::Off)
        co_return Error::not_supported("Cannot use preallocation for shrinking files");
    if (prealloc == PreallocMode::Falloc && new_size > old_size) {
        int fd = m_fd;
        Busy busy(m_busy);
        int r = co_await context().pool().run(
            [=] { return posix_fallocate(fd, off_t(old_size), off_t(new_size - old_size)); });
        if (r != 0)
            co_return Error::from_errno(r, "Could not preallocate new data");
        m_size_bytes = new_size;
        co_return ok();
    }
    if (::ftruncate(m_fd, off_t(prealloc == PreallocMode::Full ? old_size : new_size)) != 0)
        co_return Error::from_errno(errno, "Failed to resize the file");
    if (prealloc == PreallocMode::Full && new_size > old_size) {
        // Full preallocation writes real zeroes so every block is allocated.
        auto r = co_await write_zeroes_by_writing(old_size, new_size - old_size);
        if (!r) {
            (void)!::ftruncate(m_fd, off_t(old_size));
            co_return std::move(r).error().with_context("Could not write zeros for preallocation");
        }
    }
    m_size_bytes = new_size;
    co_return ok();
}

} // namespace kiln::block
