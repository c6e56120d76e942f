// Value types shared by every block driver and user of the block layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::block {

class BlockNode;

enum class RequestFlags : uint32_t {
    None = 0,
    Fua = 1u << 0,        // write through to stable storage before completing
    MayUnmap = 1u << 1,   // write_zeroes may deallocate
    NoFallback = 1u << 2, // write_zeroes must not fall back to writing buffers
};
constexpr RequestFlags operator|(RequestFlags a, RequestFlags b) { return RequestFlags(uint32_t(a) | uint32_t(b)); }
constexpr bool has_flag(RequestFlags set, RequestFlags flag) { return (uint32_t(set) & uint32_t(flag)) != 0; }

// Result of block_status for the range starting at the queried offset.
struct BlockStatus {
    enum Flags : uint32_t {
        Data = 1u << 0,        // reads return data stored somewhere
        Zero = 1u << 1,        // reads return zeroes
        OffsetValid = 1u << 2, // host_offset/host_node say where the data is
        Allocated = 1u << 3,   // this layer (not a backing file) decides the content
    };
    uint32_t flags = 0;
    uint64_t bytes = 0;           // length of the run with these flags (>0)
    uint64_t host_offset = 0;     // offset in host_node when OffsetValid
    BlockNode* host_node = nullptr;
    // Set by BlockNode::block_status_above: how many layers down the
    // allocation was found (0 = top), or nullopt when unallocated in all.
    std::optional<int> depth;
    bool compressed = false;      // qcow2: the cluster is compressed (for map)
};

enum class PreallocMode { Off, Metadata, Falloc, Full };
const char* prealloc_name(PreallocMode mode);
std::optional<PreallocMode> parse_prealloc(const std::string& name);

enum class CacheMode { Writeback, None, Writethrough, Directsync, Unsafe };
// "cache=" and qemu-img -t/-T values.
std::optional<CacheMode> parse_cache_mode(const std::string& name);
inline bool cache_uses_o_direct(CacheMode m) { return m == CacheMode::None || m == CacheMode::Directsync; }
inline bool cache_is_writethrough(CacheMode m) { return m == CacheMode::Writethrough || m == CacheMode::Directsync; }

enum class AioEngine { Threads, Native, IoUring };
std::optional<AioEngine> parse_aio_engine(const std::string& name);
const char* aio_engine_name(AioEngine engine);

// Open-time settings that apply to the whole graph being opened.
struct OpenFlags {
    bool read_write = false;
    bool force_share = false;    // -U: do not take/require shared-write locks
    bool no_backing = false;     // open without the backing chain
    bool no_io = false;          // metadata only (qemu-img info)
    CacheMode cache = CacheMode::Writeback;
    // Cache mode of the backing chain when it must differ from this
    // node's (a throw-away snapshot=on overlay over the user's image).
    std::optional<CacheMode> backing_cache;
    std::optional<AioEngine> aio; // nullopt: best available
};

struct SnapshotInfo {
    std::string id;
    std::string name;
    uint64_t vm_state_size = 0;
    uint32_t date_sec = 0;
    uint32_t date_nsec = 0;
    uint64_t vm_clock_nsec = 0;
    uint64_t icount = UINT64_MAX; // UINT64_MAX = not recorded (v3 extra data)
    uint64_t disk_size = 0;
};

// qemu-img check's counters (ImageCheck in QEMU's schema).
struct CheckResult {
    uint64_t corruptions = 0;
    uint64_t leaks = 0;
    uint64_t check_errors = 0;
    uint64_t corruptions_fixed = 0;
    uint64_t leaks_fixed = 0;
    uint64_t image_end_offset = 0;
    uint64_t total_clusters = 0;
    uint64_t allocated_clusters = 0;
    uint64_t fragmented_clusters = 0;
    uint64_t compressed_clusters = 0;
    // Human-readable lines printed during the check ("ERROR cluster 5 refcount=0 reference=1").
    std::vector<std::string> messages;
};

// qemu-img amend --force.
struct AmendFlags {
    bool force = false;
};

enum class CheckFix : uint32_t { None = 0, Leaks = 1, Errors = 2, All = 3 };

} // namespace kiln::block
