// TableCache: an LRU cache of cluster-sized metadata tables (L2 tables,
// refcount blocks). Updates are either written at once (`write`, for new
// tables and rare structural changes) or marked dirty (`mark_dirty`) and
// written later by `write_dirty`, when the driver's ordering rules allow
// (see qcow2_node.h): the cache itself never writes on its own.
//
// A table that someone holds (shared_ptr use_count > 1) or that is dirty
// is never evicted, so there is at most one in-memory copy of any table
// and no update is lost.
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
    // Bytes [dirty_begin, dirty_end) changed since the table was last
    // written (empty when clean).
    size_t dirty_begin = 0;
    size_t dirty_end = 0;
    bool dirty() const { return dirty_end > dirty_begin; }
};

using TablePtr = std::shared_ptr<CachedTable>;

// Whether the data a dirty entry points at must be flushed before the entry
// is written. Needed unless the caller proved otherwise (lazy_refcounts.cpp).
enum class DataOrder { Needed, NotNeeded };

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
    // Records that bytes [begin, end) changed; write_dirty writes them.
    void mark_dirty(CachedTable& table, size_t begin, size_t end, DataOrder order = DataOrder::Needed);
    // Some change since the last complete write_dirty was marked
    // DataOrder::Needed (or the cache cannot tell).
    bool needs_data_order() const { return m_needs_data_order; }
    // Writes every dirty table (in offset order) and marks it clean.
    // Callers must not change the tables until it returns.
    Task<Result<void>> write_dirty();
    size_t dirty_count() const { return m_dirty; }
    // More tables are held than the capacity (none could be evicted).
    bool over_capacity() const { return m_tables.size() > m_capacity; }
    // Forgets a table (its cluster was freed or rewritten behind the cache);
    // pending changes are dropped with it.
    void drop(uint64_t offset);
    void clear()
    {
        m_tables.clear();
        m_dirty = 0;
        m_needs_data_order = false;
    }

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
    size_t m_dirty = 0;
    bool m_needs_data_order = false;
    std::unordered_map<uint64_t, TablePtr> m_tables;
};

// Reads `len` bytes at `offset` of `file`, zero-filling what lies past EOF.
Task<Result<void>> read_clamped(BlockNode& file, uint64_t offset, void* buf, size_t len);

} // namespace kiln::block::qcow2
