// TableCache: an LRU cache of cluster-sized metadata tables (L2 tables,
// refcount blocks), written through to disk range by range so the on-disk
// order of metadata updates is exactly the order the driver issues them.
//
// A table that someone holds (shared_ptr use_count > 1) is never evicted,
// so there is at most one in-memory copy of any table.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "block/node.h"
#include "util/co_sync.h"

namespace kiln::block::qcow2 {

struct CachedTable {
    explicit CachedTable(EventLoop& loop) : ready(loop) {}
    uint64_t offset = 0;
    std::vector<uint8_t> data;
    bool loaded = false;
    bool failed = false;
    CoEvent ready;
    uint64_t last_use = 0;
};

using TablePtr = std::shared_ptr<CachedTable>;

class TableCache {
public:
    TableCache(EventLoop& loop, BlockNode& file, uint32_t table_bytes, size_t capacity_tables);

    // The table at `offset`, read from disk on a miss (zero-filled past EOF).
    Task<Result<TablePtr>> get(uint64_t offset);
    // A table that is known to be new: zero-filled, no disk read.
    TablePtr create(uint64_t offset);
    // Writes bytes [begin, end) of the table to disk (rounded out to the
    // file's alignment, at least 512 bytes, within the table).
    Task<Result<void>> write(const CachedTable& table, size_t begin, size_t end);
    // Forgets a table (its cluster was freed or rewritten behind the cache).
    void drop(uint64_t offset);
    void clear() { m_tables.clear(); }

    size_t capacity() const { return m_capacity; }
    void set_capacity(size_t tables) { m_capacity = tables < 2 ? 2 : tables; }
    uint32_t table_bytes() const { return m_table_bytes; }

private:
    void evict_if_full();

    EventLoop& m_loop;
    BlockNode& m_file;
    uint32_t m_table_bytes;
    size_t m_capacity;
    uint64_t m_clock = 0;
    std::unordered_map<uint64_t, TablePtr> m_tables;
};

// Reads `len` bytes at `offset` of `file`, zero-filling what lies past EOF.
Task<Result<void>> read_clamped(BlockNode& file, uint64_t offset, void* buf, size_t len);

} // namespace kiln::block::qcow2
