// BlockNode: one node of the block graph. Protocol nodes (file) talk to
// the host; format nodes (raw, qcow2) sit on a `file` child and may have
// `backing` and `data-file` children. Every I/O method is a coroutine.
//
// Contract for drivers:
// - Requests may be issued concurrently (many coroutines in flight); a
//   driver serialises what must be serialised itself.
// - Offsets/lengths are bytes; callers keep reads/writes inside
//   [0, size_bytes()) (BlockBackend checks guest requests).
// - A node opened read-only rejects writes with PermissionDenied.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "block/qiov.h"
#include "block/types.h"
#include "util/options.h"
#include "util/result.h"
#include "util/task.h"

namespace kiln::block {

class BlockContext;
class PersistentBitmaps;

class BlockNode {
public:
    explicit BlockNode(BlockContext& ctx) : m_ctx(ctx) {}
    virtual ~BlockNode() = default;
    BlockNode(const BlockNode&) = delete;
    BlockNode& operator=(const BlockNode&) = delete;

    BlockContext& context() const { return m_ctx; }

    // "file", "raw", "qcow2", ...
    virtual std::string_view driver_name() const = 0;
    // The host file name (protocol) or the file child's (format).
    virtual std::string filename() const = 0;
    virtual uint64_t size_bytes() const = 0;
    bool read_only() const { return m_read_only; }

    virtual Task<Result<void>> preadv(uint64_t offset, QIov qiov) = 0;
    virtual Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags flags) = 0;
    // Default: writes a zero buffer (unless NoFallback).
    virtual Task<Result<void>> pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags);
    // Default: no-op (discard is advisory).
    virtual Task<Result<void>> pdiscard(uint64_t offset, uint64_t bytes);
    virtual Task<Result<void>> flush();
    // Status of [offset, offset+bytes); the answer may cover less.
    // Default: all data, allocated.
    virtual Task<Result<BlockStatus>> block_status(uint64_t offset, uint64_t bytes);
    virtual Task<Result<void>> truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok);
    // Bytes the image occupies on the host (qemu-img's "disk size").
    virtual Result<uint64_t> allocated_size() const;

    // Ends use of the node: flushes caches, clears dirty state. No I/O
    // may follow. Children are closed by their parent.
    virtual Task<Result<void>> close();

    // Compressed writes (whole clusters), for convert -c.
    virtual bool supports_compressed_writes() const { return false; }
    virtual Task<Result<void>> pwritev_compressed(uint64_t offset, QIov qiov);
    // Cluster size for formats that have one (0 = none), used by convert/map.
    virtual uint32_t cluster_size() const { return 0; }
    // Minimum alignment of requests the node accepts (O_DIRECT: 512/4096).
    virtual uint32_t request_alignment() const { return 1; }

    // Snapshots (qcow2 internal snapshots).
    virtual std::vector<SnapshotInfo> snapshots() const { return {}; }
    virtual Task<Result<void>> snapshot_create(SnapshotInfo info);
    virtual Task<Result<void>> snapshot_goto(const std::string& id_or_name);
    virtual Task<Result<void>> snapshot_delete(const std::string& id, const std::string& name);
    // Opens a read-only view of a snapshot (for convert -l).
    virtual Task<Result<void>> snapshot_load_tmp(const std::string& id, const std::string& name);
    // qemu-img commit: drops everything this layer allocates, so reads go
    // to the backing file again.
    virtual Task<Result<void>> make_empty();
    // qemu-img amend -o ...: changes format options of an open image.
    virtual Task<Result<void>> amend(const OptionList& options, AmendFlags flags);
    // Live commit (the monitor's `commit`): switches an open node, and the
    // files under it, between read-only and read-write. Going read-write
    // takes the write permission's lock byte and fails with QEMU's lock
    // message if another process refuses writers; going back flushes and
    // drops it. Default: not supported.
    virtual Task<Result<void>> reopen(bool read_write);
    // VM state area (past the end of the virtual disk, as QEMU keeps it).
    virtual Task<Result<void>> save_vmstate(uint64_t pos, QIov qiov);
    virtual Task<Result<void>> load_vmstate(uint64_t pos, QIov qiov);

    // Consistency check and repair (qemu-img check).
    virtual bool supports_check() const { return false; }
    virtual Task<Result<CheckResult>> check(CheckFix fix);

    // qemu-img info's "format-specific" object ({"type":..,"data":{..}})
    // or null when the format has none.
    virtual nlohmann::json format_specific_info() const { return nullptr; }
    // True if the image was not closed cleanly (qcow2 dirty bit).
    virtual bool dirty() const { return false; }
    // Name of the backing file as recorded in the image (may be relative).
    virtual std::string backing_file_name() const { return {}; }
    virtual std::string backing_format_name() const { return {}; }
    // Persistent dirty bitmaps (block/dirty_bitmap.h); nullptr when the
    // format cannot store them.
    virtual PersistentBitmaps* persistent_bitmaps() { return nullptr; }

    BlockNode* file() const { return m_file.get(); }
    BlockNode* backing() const { return m_backing.get(); }
    BlockNode* data_file() const { return m_data_file.get(); }

    // Walks the backing chain: status of the range in this node or, where
    // unallocated here, in the layers below (depth says where).
    Task<Result<BlockStatus>> block_status_above(uint64_t offset, uint64_t bytes, BlockNode* base = nullptr);

protected:
    void set_read_only(bool ro) { m_read_only = ro; }

    std::unique_ptr<BlockNode> m_file;
    std::unique_ptr<BlockNode> m_backing;
    std::unique_ptr<BlockNode> m_data_file;

private:
    BlockContext& m_ctx;
    bool m_read_only = true;
};

} // namespace kiln::block
