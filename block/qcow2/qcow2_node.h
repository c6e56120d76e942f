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
#include "block/crypto/luks_amend.h"
#include "block/crypto/luks_header.h"
#include "block/crypto/sector_cipher.h"
#include "block/dirty_bitmap.h"
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

// Where the LUKS header lives inside the image file (extension 0x0537be77).
struct LuksArea {
    uint64_t offset = 0;
    uint64_t length = 0;
};

// One persistent dirty bitmap (bitmap directory entry + data in memory).
inline constexpr uint32_t k_bitmap_flag_in_use = 1u << 0;
inline constexpr uint32_t k_bitmap_flag_auto = 1u << 1;
inline constexpr uint32_t k_bitmap_flag_extra_compatible = 1u << 2;
struct Bitmap {
    uint64_t table_offset = 0;
    uint32_t table_size = 0;
    uint32_t flags = 0;
    uint8_t type = 1;
    uint8_t granularity_bits = 16;
    std::string name;
    std::vector<uint8_t> extra;
    // Read-write sessions: the bits (LSB first), whether they are loaded
    // and whether they differ from what is on disk.
    std::vector<uint8_t> bits;
    bool loaded = false;
    bool changed = false;
    // False for a bitmap added in this session: nothing on disk to free.
    bool on_disk = true;
};

// QEMU's refusal to use a bitmap left in use by a killed session.
Error inconsistent_bitmap_error(const std::string& name);

struct BitmapExt {
    uint32_t count = 0;
    uint64_t dir_bytes = 0;
    uint64_t dir_offset = 0;
};

// True if an in-place write is possible: a data cluster owned only by the
// active L2 table (its L1 entry must be COPIED too).
inline bool writable_in_place(uint64_t entry, bool zero_flag)
{
    return cluster_type(entry, zero_flag) == ClusterType::Normal && (entry & k_oflag_copied);
}

// Splits [offset, offset+bytes) into a partial head, whole units of
// `unit` bytes (the image's last partial unit counts as whole when the
// range reaches the end) and a partial tail (write.cpp).
void split_clusters(uint64_t offset, uint64_t bytes, uint64_t unit, uint64_t image_size, uint64_t& head,
                    uint64_t& middle, uint64_t& tail);

struct CacheSizes {
    uint64_t l2_bytes = 0;
    uint64_t refcount_bytes = 0;
};

// l2-cache-size / refcount-cache-size / cache-size as QEMU resolves them.
// l2_entry_bytes: 16 with extended L2 entries (twice the tables).
Result<CacheSizes> resolve_cache_sizes(const OptionList& options, uint64_t virtual_size, uint32_t cluster_bits,
                                       uint32_t l2_entry_bytes = 8);

// Snapshot table (de)serialisation.
Result<std::vector<Snapshot>> parse_snapshot_table(std::span<const uint8_t> bytes, uint32_t count);
std::vector<uint8_t> serialize_snapshot_table(const std::vector<Snapshot>& snapshots);

// Decompression of one compressed cluster (zlib raw deflate or zstd).
Result<void> decompress_cluster(uint8_t compression_type, std::span<const uint8_t> in, std::span<uint8_t> out);
// Compresses one cluster into `out`; NoSpace when it does not fit.
Result<size_t> compress_cluster(uint8_t compression_type, std::span<const uint8_t> in, std::span<uint8_t> out);

class Qcow2Node final : public BlockNode, public PersistentBitmaps {
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

    // As qemu-img 7.2: the qcow2 file only, not the external data file.
    Result<uint64_t> allocated_size() const override { return m_file->allocated_size(); }
    bool supports_compressed_writes() const override
    {
        return !encrypted() && !(m_header.incompatible_features & k_incompat_data_file);
    }
    Task<Result<void>> pwritev_compressed(uint64_t offset, QIov qiov) override;

    uint32_t cluster_size() const override { return uint32_t(m_cluster_size); }
    std::vector<SnapshotInfo> snapshots() const override;
    Task<Result<void>> snapshot_load_tmp(const std::string& id, const std::string& name) override;
    // Snapshot create/goto/delete (snapshot_ops.cpp); the caller keeps the
    // node quiet meanwhile (no guest requests in flight), as savevm does.
    Task<Result<void>> snapshot_create(SnapshotInfo info) override;
    Task<Result<void>> snapshot_goto(const std::string& id_or_name) override;
    Task<Result<void>> snapshot_delete(const std::string& id, const std::string& name) override;
    // qemu-img commit (make_empty.cpp).
    Task<Result<void>> make_empty() override;
    // qemu-img amend (amend.cpp).
    Task<Result<void>> amend(const OptionList& options, AmendFlags flags) override;
    // VM state (vmstate.cpp): guest offsets from vm_state_offset() on.
    Task<Result<void>> save_vmstate(uint64_t pos, QIov qiov) override;
    Task<Result<void>> load_vmstate(uint64_t pos, QIov qiov) override;
    uint64_t vm_state_offset() const;

    bool supports_check() const override { return true; }
    Task<Result<CheckResult>> check(CheckFix fix) override;
    // The monitor's commit into a qcow2 backing file (reopen.cpp).
    Task<Result<void>> reopen(bool read_write) override;

    nlohmann::json format_specific_info() const override;
    bool dirty() const override { return m_header.incompatible_features & k_incompat_dirty; }
    std::string backing_file_name() const override { return m_header.backing_file; }
    std::string backing_format_name() const override { return m_header.backing_format; }

    // Persistent dirty bitmaps (bitmap_ops.cpp): qemu-img bitmap and
    // convert --bitmaps; edits reach the file on close.
    PersistentBitmaps* persistent_bitmaps() override { return this; }
    bool bitmaps_supported() const override { return m_v3; }
    std::vector<DirtyBitmapInfo> bitmaps() const override;
    Result<void> bitmap_add(const std::string& name, std::optional<uint64_t> granularity_bytes,
                            bool disabled) override;
    Result<void> bitmap_remove(const std::string& name) override;
    Result<void> bitmap_clear(const std::string& name) override;
    Result<void> bitmap_enable(const std::string& name, bool enabled) override;
    Task<Result<DirtyBits>> bitmap_bits(const std::string& name) override;
    Result<void> bitmap_merge(const std::string& target, const DirtyBits& source) override;
    std::string bitmap_node_name() const override;

    // For create and tests.
    const Header& header() const { return m_header; }
    Task<Result<void>> set_backing(const std::string& name, const std::string& format);
    // encrypt.format / encrypt.key-secret / encrypt.* of a new image
    // (encryption.cpp); no-op without encrypt.format.
    Task<Result<void>> setup_encryption(const OptionList& options);
    bool encrypted() const { return m_header.crypt_method != 0; }
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
    void l2_set_bitmap(CachedTable& t, uint64_t idx, uint64_t bitmap)
    {
        if (m_ext_l2)
            store_be64(&t.data[idx * m_l2_entry_bytes + 8], bitmap);
    }
    // Marks entries [first, first+count) of an L2 table dirty.
    void mark_l2_dirty(CachedTable& t, uint64_t first, uint64_t count, DataOrder order = DataOrder::Needed)
    {
        m_l2_cache->mark_dirty(t, first * m_l2_entry_bytes, (first + count) * m_l2_entry_bytes, order);
    }
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

    // --- external data file (data_file.cpp) ---
    bool data_file_raw() const { return m_header.autoclear_features & k_autoclear_data_file_raw; }
    // Host clusters for `count` guest clusters from `guest`: in the data
    // file the guest offset itself (no refcounts there), else new clusters
    // of the image file (*got may be fewer).
    Task<Result<uint64_t>> alloc_data_clusters(uint64_t guest, uint64_t count, uint64_t* got);
    // Gives back clusters alloc_data_clusters returned when nothing points
    // at them yet.
    Task<void> free_new_data_clusters(uint64_t host, uint64_t count);
    // Opens the external data file of an image that has one (load()).
    Task<Result<void>> open_data_file(const ImageSpec& spec);
    // An L2 entry of a data-file image is only valid at guest offset in
    // raw mode, and never compressed.
    Result<void> check_data_file_entry(uint64_t guest, uint64_t entry, uint64_t l1_idx) const;
    // The data file's copy of zeroed guest ranges (data_file_raw: the data
    // file must read as the guest does).
    Task<Result<void>> zero_raw_data_file(uint64_t offset, uint64_t bytes);
    Task<Result<void>> amend_data_file(const OptionList& options);
    // The data file follows the virtual size (truncate).
    Task<Result<void>> resize_data_file(uint64_t new_size, PreallocMode prealloc);

    // --- extended L2 entries (subclusters.cpp) ---
    uint64_t subcluster_size() const { return m_cluster_size / 32; }
    Result<void> check_subcluster_bitmap(uint64_t entry, uint64_t bitmap, uint64_t l1_idx, uint64_t idx) const;
    Task<Result<void>> pwritev_subclusters(uint64_t offset, QIov qiov);
    // One guest cluster's write (qiov within it).
    Task<Result<void>> write_subclusters(uint64_t guest, QIov qiov);
    Task<Result<void>> write_zeroes_subclusters(uint64_t offset, uint64_t bytes, RequestFlags flags);
    // The entry and bitmap zero_or_discard_clusters gives a whole cluster.
    void zero_ext_entry(uint64_t e, uint64_t bm, bool discard, bool may_unmap, uint64_t* ne, uint64_t* nbm) const;
    // Subcluster-aligned range inside one cluster: zero bits.
    Task<Result<bool>> zero_subcluster_range(uint64_t offset, uint64_t bytes);

    // --- write path (write.cpp) ---
    struct Inflight {
        uint64_t first = 0, end = 0; // guest clusters [first, end)
        CoEvent* done;
    };
    Task<void> lock_clusters(uint64_t first, uint64_t end, CoEvent& mine);
    void unlock_clusters(CoEvent& mine);
    // lock_clusters/unlock_clusters as a scope: the range is released when
    // the returned guard goes away.
    class ClusterRange {
    public:
        ClusterRange(Qcow2Node* node, std::unique_ptr<CoEvent> done) : m_node(node), m_done(std::move(done)) {}
        ClusterRange(ClusterRange&& o) noexcept = default;
        ClusterRange& operator=(ClusterRange&&) = delete;
        ~ClusterRange()
        {
            if (m_done)
                m_node->unlock_clusters(*m_done);
        }

    private:
        Qcow2Node* m_node;
        std::unique_ptr<CoEvent> m_done;
    };
    Task<ClusterRange> own_clusters(uint64_t first, uint64_t end);
    // Drops the references of L2 entries a zero/discard removed (after
    // committing the entries) and, for discard, gives the host space back.
    Task<Result<void>> release_removed(const std::vector<uint64_t>& removed, bool discard);
    Task<Result<uint64_t>> write_allocating(uint64_t offset, QIov qiov);
    Task<Result<void>> zero_or_discard_clusters(uint64_t offset, uint64_t bytes, bool discard, bool may_unmap);
    Task<Result<void>> mark_corrupt(const std::string& why);
    Task<Result<void>> load_snapshots();

    // --- snapshots (snapshot.cpp, snapshot_tree.cpp, snapshot_ops.cpp) ---
    enum class CopiedMode { ClearAll, FromRefcounts };
    // Index in m_snapshots of the entry matching id and name (empty = any),
    // or -1. find_snapshot_by_id_or_name: id first, then name (QEMU's order).
    int find_snapshot(const std::string& id, const std::string& name) const;
    int find_snapshot_by_id_or_name(const std::string& id_or_name) const;
    Task<Result<std::vector<uint64_t>>> read_snapshot_l1(const Snapshot& sn);
    // Every cluster an L1 tree references (L2 tables, data, compressed
    // data), once per reference.
    Task<Result<std::vector<uint64_t>>> tree_clusters(const std::vector<uint64_t>& l1);
    // Adds `delta` to the refcount of every listed cluster (repeats count
    // again); checks all before writing any. Appends clusters that reach 0
    // to *freed. plan_ only checks and computes the new counts.
    struct RefcountUpdate {
        uint64_t cluster;
        uint64_t value;
    };
    Task<Result<std::vector<RefcountUpdate>>> plan_refcount_delta(std::vector<uint64_t> clusters, int64_t delta);
    Task<Result<void>> apply_refcount_delta(std::vector<uint64_t> clusters, int64_t delta,
                                            std::vector<uint64_t>* freed);
    Task<Result<void>> update_copied_flags(CopiedMode mode);
    Task<Result<void>> write_l1_table();
    Task<Result<void>> write_snapshot_table(std::vector<Snapshot> list);
    // --- dirty bit (lazy_refcounts.cpp) ---
    // Sets/clears incompatible bit 0 (v3), flushing around it; caller
    // holds m_meta_lock.
    Task<Result<void>> set_dirty_bit(bool dirty);
    // lazy_refcounts=on: the first refcount change of a session sets the
    // bit (caller holds m_meta_lock); close clears it.
    Task<Result<void>> mark_dirty_if_lazy();
    Task<Result<void>> mark_clean_on_close();
    // While a lazy-refcounts session's dirty bit is on disk, a crash makes
    // the next open rebuild every refcount, so refcount blocks need not
    // reach the disk before the pointers that use them: commits write L2
    // tables and refcount blocks together and flush once.
    bool refcounts_may_lag() const { return m_lazy_dirty; }
    Task<Result<void>> commit_metadata_lazy();
    // For an allocating write's new L2 entries (write.cpp): whether its data
    // must be flushed before the entries, i.e. whether the clusters' old
    // content, read back after a crash, would differ from what the entries
    // promise for the bytes the guest did not write (COW from real data,
    // reused clusters, encryption, an external data file).
    DataOrder data_order_for(uint64_t host, uint64_t head_entry, uint64_t head_bytes, uint64_t tail_entry,
                             uint64_t tail_bytes);
    bool m_lazy_dirty = false;
    // Clusters from here on were past the end of the file when the lazy
    // session began and have not been freed since: they read as zeroes.
    uint64_t m_fresh_from_cluster = UINT64_MAX;
    Task<void> discard_freed(const std::vector<uint64_t>& clusters);
    uint64_t m_snapshot_table_bytes = 0;

    // --- amend (amend.cpp) ---
    Task<Result<std::map<uint64_t, uint64_t>>> count_references();
    Task<Result<void>> change_refcount_order(uint32_t order);
    Task<Result<void>> expand_zero_clusters(std::vector<uint64_t> l1);
    Task<Result<void>> downgrade_to_v2();

    // --- persistent dirty bitmaps (bitmaps.cpp) ---
    Task<Result<void>> load_bitmaps();
    Result<void> parse_bitmaps(std::span<const uint8_t> dir, uint32_t count);
    Task<Result<std::vector<uint64_t>>> read_bitmap_table(const Bitmap& b);
    // Clusters the bitmaps use (directory, tables, data), for check.
    Task<Result<std::vector<uint64_t>>> bitmap_clusters();
    Task<Result<void>> start_bitmap_tracking();
    Task<Result<void>> store_bitmaps();
    void note_guest_write(uint64_t offset, uint64_t bytes);
    void resize_bitmaps();
    Result<void> check_bitmaps_resizable() const;
    std::vector<uint8_t> serialize_bitmap_directory() const;
    void write_bitmap_extension();
    uint64_t bitmap_table_entries(uint32_t granularity_bits) const;
    nlohmann::json bitmaps_info() const;
    // Reads the bits of `b` from its table and data clusters.
    Task<Result<std::vector<uint8_t>>> read_bitmap_bits(const Bitmap& b);
    Bitmap* find_bitmap(const std::string& name);
    // Reverting to a snapshot would leave the bitmaps describing another
    // disk: QEMU refuses while there are any, even disabled ones.
    Result<void> check_no_bitmaps_for_snapshot_goto() const;
    // QEMU's checks before a bitmap may be changed (readonly, inconsistent).
    Result<Bitmap*> bitmap_for_change(const std::string& name, bool allow_read_only);
    // The clusters a bitmap stored on disk uses (table and data).
    Task<Result<std::vector<uint64_t>>> stored_bitmap_clusters(const Bitmap& b);
    std::vector<Bitmap> m_bitmaps;
    std::optional<BitmapExt> m_bitmap_ext;
    // Removed in this session: their clusters are freed on store.
    std::vector<Bitmap> m_removed_bitmaps;
    // The directory must be rewritten (flags, additions, removals).
    bool m_bitmaps_edited = false;

    // --- encryption (encryption.cpp) ---
    Task<Result<void>> open_encryption(const ImageSpec& spec);
    Result<LuksArea> luks_area() const;
    Result<void> check_cipher() const;
    // The legacy AES cipher from the secret `secret_id` (wiped after use).
    Result<void> use_legacy_aes(const std::string& secret_id);
    // amend's encrypt.* options (LUKS key slots, encryption.cpp): checked
    // with the other options, applied after a compat upgrade as QEMU does.
    Result<std::optional<crypto::LuksAmendOptions>> check_encryption_amend(const OptionList& options) const;
    Task<Result<void>> amend_encryption(const crypto::LuksAmendOptions& options, AmendFlags flags);
    uint64_t crypt_sector(uint64_t host, uint64_t guest) const;
    // Data cluster I/O at host offset `host` (guest offset `guest`),
    // decrypting/encrypting when the image is encrypted. Writes of
    // encrypted data must be whole sectors.
    Task<Result<void>> read_data(uint64_t host, uint64_t guest, QIov qiov);
    Task<Result<void>> write_data(uint64_t host, uint64_t guest, QIov qiov);
    Task<Result<void>> pwritev_unaligned_encrypted(uint64_t offset, QIov qiov, RequestFlags flags);
    nlohmann::json encryption_info() const;
    std::optional<crypto::SectorCipher> m_cipher;
    std::optional<crypto::LuksHeader> m_luks;
    // Id of the secret that unlocked m_luks (amend unlocks with it again).
    std::string m_key_secret_id;

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
