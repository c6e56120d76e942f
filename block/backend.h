// BlockBackend: what a device or a tool holds. Owns the root node of a
// graph, checks requests against the disk size and the read-only flag,
// counts requests in flight (so the owner can drain before closing or
// snapshotting) and keeps per-disk statistics (info blockstats).
#pragma once

#include <memory>

#include "block/node.h"
#include "util/co_sync.h"
#include "util/event_loop.h"

namespace kiln::block {

// Counters as QEMU's BlockDeviceStats names them.
struct BlockStats {
    uint64_t rd_bytes = 0;
    uint64_t wr_bytes = 0;
    uint64_t unmap_bytes = 0;
    uint64_t rd_operations = 0;
    uint64_t wr_operations = 0;
    uint64_t flush_operations = 0;
    uint64_t unmap_operations = 0;
    uint64_t zero_operations = 0;
    uint64_t rd_total_time_ns = 0;
    uint64_t wr_total_time_ns = 0;
    uint64_t flush_total_time_ns = 0;
    uint64_t unmap_total_time_ns = 0;
    uint64_t failed_rd_operations = 0;
    uint64_t failed_wr_operations = 0;
    uint64_t failed_flush_operations = 0;
    uint64_t failed_unmap_operations = 0;
    uint64_t invalid_rd_operations = 0;
    uint64_t invalid_wr_operations = 0;
    uint64_t invalid_flush_operations = 0;
    uint64_t invalid_unmap_operations = 0;
};

enum class BackendAccess { ReadOnly, ReadWrite };

class BlockBackend {
public:
    // A ReadWrite backend over a read-only root is refused by the caller
    // (open the image read-write first); here access only narrows.
    BlockBackend(EventLoop& loop, std::unique_ptr<BlockNode> root, BackendAccess access);
    ~BlockBackend();
    BlockBackend(const BlockBackend&) = delete;
    BlockBackend& operator=(const BlockBackend&) = delete;

    BlockNode* root() const { return m_root.get(); }
    uint64_t size_bytes() const { return m_root ? m_root->size_bytes() : 0; }
    bool read_only() const { return m_read_only; }

    Task<Result<void>> read(uint64_t offset, QIov qiov);
    Task<Result<void>> write(uint64_t offset, QIov qiov, RequestFlags flags = RequestFlags::None);
    Task<Result<void>> write_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags = RequestFlags::None);
    Task<Result<void>> discard(uint64_t offset, uint64_t bytes);
    Task<Result<void>> flush();

    // Requests started and not yet finished.
    int in_flight() const { return m_in_flight.count(); }
    // Resumes once no request is in flight.
    Task<void> drain();
    // Holds new requests at the door (they wait, they do not fail) and
    // drains the ones in flight, until end_quiesce(): a commit under a
    // running guest sees no request. Not nested.
    Task<void> quiesce();
    void end_quiesce();
    // Drains, then closes the graph (flushes, clears dirty state). The
    // backend holds no root afterwards.
    Task<Result<void>> close();

    // Guest devices, unlike tools, do not let other processes write their
    // disk (QEMU's devices share only read and write-unchanged unless
    // share-rw=on). Narrows the locks of every file in the graph as QEMU's
    // permission propagation does: the data path refuses write (and the
    // backing chain write and resize). Fails with the lock error if another
    // process already writes. Only narrows: call once, after opening.
    enum class ShareWrite { No, Yes };
    Result<void> apply_device_sharing(ShareWrite share_rw);

    const BlockStats& stats() const { return m_stats; }
    void reset_stats() { m_stats = {}; }

private:
    Result<void> check_request(uint64_t offset, uint64_t bytes, bool write) const;
    // Counts a request in flight for its lifetime.
    class InFlight;
    Task<void> wait_while_quiesced();

    EventLoop& m_loop;
    std::unique_ptr<BlockNode> m_root;
    bool m_read_only;
    CoWaitGroup m_in_flight;
    // Set while quiesced; requests wait for it.
    std::unique_ptr<CoEvent> m_resume;
    BlockStats m_stats;
};

} // namespace kiln::block
