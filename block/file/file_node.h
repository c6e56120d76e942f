// FileNode: the `file` protocol driver. Reads and writes a host file or
// block device through an IoEngine (threads, native, io_uring), honours the
// cache mode (O_DIRECT with bounce buffers for unaligned requests, flush
// after writes for writethrough, no flushes for unsafe) and takes QEMU-
// compatible image locks. close() waits for requests still in the kernel;
// destroy the node only after close() (or with nothing in flight).
#pragma once

#include <list>
#include <memory>
#include <string>

#include "block/file/engine.h"
#include "block/file/lock.h"
#include "block/node.h"
#include "util/co_sync.h"
#include "util/options.h"

namespace kiln::block {

enum class LockingMode { On, Off, Auto };

class FileNode final : public BlockNode {
public:
    // Opens `filename`; options are the "file." subtree (locking, aio,
    // cache.direct, cache.no-flush, ...). Errors read "Could not open 'x': ...".
    static Task<Result<std::unique_ptr<FileNode>>> open(
        BlockContext& ctx, const std::string& filename, const OptionList& options, const OpenFlags& flags);
    ~FileNode() override;

    std::string_view driver_name() const override { return "file"; }
    std::string filename() const override { return m_filename; }
    uint64_t size_bytes() const override { return m_size_bytes; }

    Task<Result<void>> preadv(uint64_t offset, QIov qiov) override;
    Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags flags) override;
    Task<Result<void>> pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags) override;
    Task<Result<void>> pdiscard(uint64_t offset, uint64_t bytes) override;
    Task<Result<void>> flush() override;
    Task<Result<BlockStatus>> block_status(uint64_t offset, uint64_t bytes) override;
    Task<Result<void>> truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok) override;
    Result<uint64_t> allocated_size() const override;
    Task<Result<void>> close() override;
    uint32_t request_alignment() const override { return m_request_align; }
    // A new descriptor with the new access mode replaces the old one, and
    // the write permission's lock byte moves with it.
    Task<Result<void>> reopen(bool read_write) override;

    // Changes the QEMU permissions this open holds (BlockPerm bits, see
    // lock.h): locks the new bytes, then checks nobody else conflicts. On
    // failure the previous permissions stay in force.
    Result<void> set_permissions(uint64_t perm, uint64_t shared);
    uint64_t permissions() const { return m_perm; }
    uint64_t shared_permissions() const { return m_shared; }
    bool locking() const { return m_locking; }

    AioEngine engine() const { return m_engine->kind(); }
    bool direct_io() const { return m_direct; }
    uint32_t memory_alignment() const { return m_mem_align; }
    int fd() const { return m_fd; }
    // fdatasync calls issued so far (cache-mode behaviour is visible here).
    uint64_t host_flushes() const { return m_host_flushes; }

private:
    FileNode(BlockContext& ctx, std::string filename);

    // Counts one system call in flight for its lifetime, so close() can
    // wait for stragglers before the engine (and its threads) go away.
    struct Busy {
        explicit Busy(CoWaitGroup& group)
            : m_group(group)
        {
            m_group.add();
        }
        ~Busy() { m_group.done(); }
        Busy(const Busy&) = delete;
        Busy& operator=(const Busy&) = delete;
        CoWaitGroup& m_group;
    };

    Result<void> parse_options(const OptionList& options, const OpenFlags& flags);
    Result<void> open_fd(const OpenFlags& flags);
    Result<void> choose_engine();
    void probe_alignment();

    bool is_aligned(uint64_t offset, const QIov& qiov) const;
    // One request through the engine, looping over short transfers; reads
    // past EOF yield zeroes.
    Task<Result<void>> do_io(IoOp op, uint64_t offset, const QIov& qiov);
    Task<Result<void>> bounced_read(uint64_t offset, QIov qiov);
    Task<Result<void>> bounced_write(uint64_t offset, QIov qiov);
    Task<Result<void>> after_write(uint64_t end, RequestFlags flags);
    Task<Result<void>> write_zeroes_by_writing(uint64_t offset, uint64_t bytes);
    Task<Result<void>> fallocate(int mode, uint64_t offset, uint64_t bytes);

    // O_DIRECT read-modify-write serialisation: a write that rewrites whole
    // blocks around the caller's bytes must not overlap another write.
    struct TrackedWrite {
        uint64_t start;
        uint64_t end;
        bool rmw;
        std::unique_ptr<CoEvent> done;
    };
    Task<std::list<TrackedWrite>::iterator> track_write(uint64_t start, uint64_t end, bool rmw);
    void untrack_write(std::list<TrackedWrite>::iterator it);

    std::string m_filename;
    int m_fd = -1;
    bool m_block_device = false;
    bool m_regular_file = false;
    uint64_t m_size_bytes = 0;
    // Shared for `threads` (one worker set per context), own otherwise.
    std::shared_ptr<IoEngine> m_engine;
    std::optional<AioEngine> m_requested_engine;
    bool m_direct = false;
    bool m_no_flush = false;
    bool m_writethrough = false;
    uint32_t m_request_align = 1;
    uint32_t m_mem_align = 1;
    LockingMode m_locking_mode = LockingMode::Auto;
    bool m_locking = false;
    uint64_t m_perm = 0;
    uint64_t m_shared = k_perm_all;
    uint64_t m_held_perm = 0;
    uint64_t m_held_unshared = 0;
    std::list<TrackedWrite> m_writes;
    uint64_t m_host_flushes = 0;
    CoWaitGroup m_busy;
};

} // namespace kiln::block
