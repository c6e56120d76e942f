// Qcow2Node: the qcow2 format driver's node. Its methods are spread over
// one file per concern (see README.md).
//
// Concurrency: every request is a coroutine on the event loop thread.
// Metadata (L1, L2 tables, refcounts, header) changes only while
// m_meta_lock is held; the lock is never held across guest data I/O, so
// reads and writes of allocated clusters run concurrently. Allocating writes
// additionally own their guest cluster range (m_inflight) so two writes to
// the same unallocated cluster cannot both allocate it.
//
// Crash safety (commit.cpp): L2 tables and refcount blocks are write-back
// caches. Changes are made in memory under m_meta_lock and written by
// commit_metadata() as: dirty refcount blocks, flush, dirty L2 tables,
// flush. A guest data write completes before the L2 entry mapping it is
// changed in memory, so it is on disk before the entry is written. L1
// entries, refcount table entries and the header are written at once, each
// after order_after_refcounts(). References are removed and committed
// before the refcounts they held are decremented, so a freed cluster is
// reused only once nothing on disk points at it. A crash (or a kill) at any
// instant therefore leaks clusters at worst, and a completed flush() has
// made every earlier write durable. Code that reads metadata from the file
// rather than through the caches (check, snapshot operations) commits first.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/context.h"
#include "block/node.h"
#include "block/qcow2/format.h"
#include "block/qcow2/header.h"
#include "block/qcow2/table_cache.h"
#include "util/co_sync.h"

namespace kiln::block::qcow2 {

struct Snapshot {
    SnapshotInfo info;
    uint64_t l1_table_offset = 0;
    uint32_t l1_size = 0;
    uint32_t vm_state_size32 = 0;
    // Extra data beyond what Kiln interprets, kept on rewrite.
    std::vector<uint8_t> extra_unknown;
};

// True if an in-place write is possible: a data cluster owned only by the
// active L2 table (its L1 entry must be COPIED too).
inline bool writable_in_place(uint64_t entry, bool zero_flag)
{
    return cluster_type(entry, zero_flag) == ClusterType::Normal && (entry & k_oflag_copied);
}

struct CacheSizes {
    uint64_t l2_bytes = 0;
    uint64_t refcount_bytes = 0;
};

// l2-cache-size / refcount-cache-size / cache-size as QEMU resolves them.
Result<CacheSizes> resolve_cache_sizes(const OptionList& options, uint64_t virtual_size, uint32_t cluster_bits);

// Snapshot table (de)serialisation.
Result<std::vector<Snapshot>> parse_snapshot_table(std::span<const uint8_t> bytes, uint32_t count);
std::vector<uint8_t> serialize_snapshot_table(const std::vector<Snapshot>& snapshots);

// Decompression of one compressed cluster (zlib raw deflate or zstd).
Result<void> decompress_cluster(uint8_t compression_type, std::span<const uint8_t> in, std::span<uint8_t> out);
// Compresses one cluster into `out`; NoSpace when it does not fit.
Result<size_t> compress_cluster(uint8_t compression_type, std::span<const uint8_t> in, std::span<uint8_t> out);

class Qcow2Node final : public BlockNode {
public:
    static Task<Result<std::unique_ptr<BlockNode>>> open(BlockContext& ctx, std::unique_ptr<BlockNode> file,
                                                         const ImageSpec& spec);

    std::string_view driver_name() const override { return "qcow2"; }
    std::string filename() const override { return m_file->filename(); }
    uint64_t size_bytes() const override { return m_size; }

    Task<Result<void>> preadv(uint64_t offset, QIov qiov) override;
    Task<Result<void>> pwritev(uint64_t offset, QIov qiov, RequestFlags flags) override;
    Task<Result<void>> pwrite_zeroes(uint64_t offset, uint64_t bytes, RequestFlags flags) override;
    Task<Result<void>> pdiscard(uint64_t offset, uint64_t bytes) override;
    Task<Result<BlockStatus>> block_status(uint64_t offset, uint64_t bytes) override;
    Task<Result<void>> truncate(uint64_t new_size, PreallocMode prealloc, bool shrink_ok) override;
    Task<Result<void>> flush() override;
    Task<Result<void>> close() override;

    bool supports_compressed_writes() const override { return true; }
    Task<Result<void>> pwritev_compressed(uint64_t offset, QIov qiov) override;

    uint32_t cluster_size() const override { return uint32_t(m_cluster_size); }
    std::vector<SnapshotInfo> snapshots() const override;
    Task<Result<void>> snapshot_load_tmp(const std::string& id, const std::string& name) override;

    bool supports_check() const override { return true; }
    Task<Result<CheckResult>> check(CheckFix fix) override;
    // qemu-img commit / the monitor's commit (make_empty.cpp).
    Task<Result<void>> make_empty() override;
    Task<Result<void>> reopen(bool read_write) override;

    nlohmann::json format_specific_info() const override;
    bool dirty() const override { return m_header.incompatible_features & k_incompat_dirty; }
    std::string backing_file_name() const override { return m_header.backing_file; }
    std::string backing_format_name() const override { return m_header.backing_format; }

    // For create and tests.
    const Header& header() const { return m_header; }
    Task<Result<void>> set_backing(const std::string& name, const std::string& format);
    // Allocates clusters for [offset, offset+bytes) (preallocation).
    Task<Result<void>> preallocate(uint64_t offset, uint64_t bytes, PreallocMode mode);

    Qcow2Node(BlockContext& ctx, std::unique_ptr<BlockNode> file);

private:
    friend class Qcow2Checker;

    // --- open (driver.cpp) ---
    Task<Result<void>> load(const ImageSpec& spec);
    Task<Result<void>> open_backing(const ImageSpec& spec);
    Task<Result<void>> write_header();

    // --- mapping (mapping.cpp) ---
    uint64_t l1_index(uint64_t guest) const { return guest >> (m_cluster_bits + m_l2_bits); }
    uint64_t l2_index(uint64_t guest) const { return (guest >> m_cluster_bits) & (m_l2_entries - 1); }
    uint64_t offset_in_cluster(uint64_t v) const { return v & (m_cluster_size - 1); }
    // The L2 table for l1 index (nullptr when unallocated).
    Task<Result<TablePtr>> l2_table_for_read(uint64_t l1_idx);
    // Same, allocated or copied (COW of a shared table) so it can be
    // modified. Caller holds m_meta_lock.
    Task<Result<TablePtr>> l2_table_for_write(uint64_t l1_idx);
    uint64_t l2_get(const CachedTable& t, uint64_t idx) const { return load_be64(&t.data[idx * m_l2_entry_bytes]); }
    // Extended L2: subcluster bitmap (bits 0-31 allocated, 32-63 zero).
    uint64_t l2_bitmap(const CachedTable& t, uint64_t idx) const
    {
        return m_ext_l2 ? load_be64(&t.data[idx * m_l2_entry_bytes + 8]) : 0;
    }
    void l2_set(CachedTable& t, uint64_t idx, uint64_t v) { store_be64(&t.data[idx * m_l2_entry_bytes], v); }
    // Bit 0 of an L2 entry means "reads as zero" only in v3 without
    // extended L2 (there the bitmap says it).
    // Where data clusters live: the external data file, if any.
    BlockNode* data_node() const { return m_data_file ? m_data_file.get() : m_file.get(); }
    // Offset 0 is a valid data offset in an external data file; COPIED
    // (always set there) tells it from "unallocated", as in QEMU.
    ClusterType type_of(uint64_t entry) const
    {
        ClusterType t = cluster_type(entry, zero_flag());
        if (t == ClusterType::Unallocated && m_data_file && (entry & k_oflag_copied))
            return ClusterType::Normal;
        return t;
    }
    bool zero_flag() const { return m_v3 && !m_ext_l2; }
    Task<Result<void>> write_l1_entry(uint64_t l1_idx);
    Task<Result<void>> grow_l1(uint64_t min_entries);
    Result<void> check_l2_offset(uint64_t l2_offset, uint64_t l1_idx) const;
    // Refuses writes on metadata that a corrupted L2 entry could aim at.
    Task<Result<void>> check_data_write(uint64_t host_offset, uint64_t bytes);

    // --- refcounts and allocation (refcount.cpp) ---
    uint64_t refblock_entries() const { return (m_cluster_size * 8) >> m_header.refcount_order; }
    Task<Result<uint64_t>> get_refcount(uint64_t cluster);
    uint64_t refblock_get(const CachedTable& t, uint64_t idx) const;
    void refblock_set(CachedTable& t, uint64_t idx, uint64_t v);
    // Sets the refcount of `count` clusters from `cluster` to `value`
    // (their refblocks must exist when value > 0 is set on a new range:
    // alloc_clusters makes sure). Caller holds m_meta_lock.
    Task<Result<void>> set_refcounts(uint64_t cluster, uint64_t count, uint64_t value);
    Task<Result<void>> change_refcount(uint64_t cluster, int64_t delta);
    // Allocates `count` contiguous clusters (refcount 1) and returns the
    // host offset of the first. Caller holds m_meta_lock.
    Task<Result<uint64_t>> alloc_clusters(uint64_t count);
    // Allocates between 1 and `count` contiguous clusters (*got says how
    // many): data writes take what is there instead of searching for a run.
    Task<Result<uint64_t>> alloc_some_clusters(uint64_t count, uint64_t* got);
    Task<Result<uint64_t>> scan_alloc(uint64_t count, bool exact, uint64_t* got);
    Task<Result<uint64_t>> alloc_at_end(uint64_t count);
    // Frees clusters referenced by a removed L2 entry (data or compressed).
    Task<Result<void>> release_l2_entry(uint64_t entry);
    Task<Result<void>> make_refblock(uint64_t table_index, uint64_t at_cluster);
    Task<Result<void>> grow_refcount_table(uint64_t at_cluster, uint64_t min_entries);
    Task<Result<void>> write_reftable_entry(uint64_t idx);
    uint64_t refcount_max() const
    {
        return m_header.refcount_order == 6 ? UINT64_MAX : (1ull << (1u << m_header.refcount_order)) - 1;
    }
    // Flushes the file unless every write issued before `seq` is already
    // flushed. Caller holds m_meta_lock.
    Task<Result<void>> flush_covering(uint64_t seq);
    uint64_t note_write() { return ++m_write_seq; }

    // --- metadata write-back (commit.cpp); caller holds m_meta_lock ---
    // Writes the dirty refcount blocks and flushes: afterwards a pointer
    // (L1/reftable entry, header field) may be written to anything
    // allocated so far.
    Task<Result<void>> order_after_refcounts();
    // Writes all dirty metadata in crash-safe order and flushes.
    Task<Result<void>> commit_metadata();
    // Commits when dirty tables made a cache grow past its capacity.
    Task<Result<void>> commit_if_full();

    // --- read path (read.cpp) ---
    Task<Result<void>> read_backing(uint64_t offset, QIov qiov);
    Task<Result<void>> read_file_clamped(uint64_t host_offset, QIov qiov);
    // Reads within one cluster of an image with extended L2 entries.
    Task<Result<void>> read_subclusters(uint64_t guest, uint64_t entry, uint64_t bitmap, QIov qiov);
    BlockStatus subcluster_status(uint64_t guest, uint64_t entry, uint64_t bitmap, uint64_t bytes) const;
    Task<Result<void>> read_compressed(uint64_t l2_entry, uint8_t* cluster_buf);
    Task<Result<uint64_t>> alloc_bytes(uint64_t size);
    // Compressed writes allocate in the order they started (compressed.cpp).
    Task<void> wait_compress_turn(uint64_t ticket);
    void end_compress_turn();
    // Reads one guest cluster's old content (for copy-on-write).
    Task<Result<void>> read_cluster_content(uint64_t guest_cluster_offset, uint64_t entry, uint64_t from,
                                            uint64_t len, uint8_t* out);

    // --- write path (write.cpp) ---
    struct Inflight {
        uint64_t first = 0, end = 0; // guest clusters [first, end)
        CoEvent* done;
    };
    Task<void> lock_clusters(uint64_t first, uint64_t end, CoEvent& mine);
    void unlock_clusters(CoEvent& mine);
    Task<Result<uint64_t>> write_allocating(uint64_t offset, QIov qiov);
    Task<Result<void>> zero_or_discard_clusters(uint64_t offset, uint64_t bytes, bool discard, bool may_unmap);
    Task<Result<void>> mark_corrupt(const std::string& why);
    Task<Result<void>> load_snapshots();

    // --- state ---
    Header m_header;
    uint64_t m_size = 0;
    uint32_t m_cluster_bits = 16;
    uint64_t m_cluster_size = 65536;
    uint32_t m_l2_bits = 13;
    uint64_t m_l2_entries = 8192;
    uint64_t m_compressed_shift = 0; // csize_shift
    uint64_t m_compressed_mask = 0;  // csize_mask
    uint64_t m_compressed_offset_mask = 0;
    bool m_v3 = true;
    bool m_ext_l2 = false;
    uint32_t m_l2_entry_bytes = 8;

    std::vector<uint64_t> m_l1;
    uint64_t m_l1_offset = 0;
    std::vector<uint64_t> m_reftable;
    std::vector<Snapshot> m_snapshots;
    bool m_snapshot_loaded = false;

    std::unique_ptr<TableCache> m_l2_cache;
    std::unique_ptr<TableCache> m_refcount_cache;
    CoMutex m_meta_lock;
    std::list<Inflight> m_inflight;
    uint64_t m_free_cluster_hint = 0;
    uint64_t m_write_seq = 0;
    uint64_t m_flushed_seq = 0;
    bool m_closed = false;
    bool m_allocating_at_end = false; // repair: allocate past everything referenced
    uint64_t m_alloc_floor = 0;
    uint64_t m_free_byte_offset = 0; // where the next compressed cluster may go
    uint64_t m_compress_next_ticket = 0;
    uint64_t m_compress_turn = 0;
    std::map<uint64_t, CoEvent*> m_compress_waiters;
};

} // namespace kiln::block::qcow2
