#include "block/qcow2/table_cache.h"

#include <algorithm>
#include <cstring>

namespace kiln::block::qcow2 {

Task<Result<void>> read_clamped(BlockNode& file, uint64_t offset, void* buf, size_t len)
{
    uint64_t file_size = file.size_bytes();
    size_t avail = offset >= file_size ? 0 : size_t(std::min<uint64_t>(len, file_size - offset));
    if (avail < len)
        std::memset(static_cast<char*>(buf) + avail, 0, len - avail);
    if (avail)
        CO_TRY(co_await file.preadv(offset, QIov(buf, avail)));
    co_return ok();
}

TableCache::TableCache(EventLoop& loop, BlockNode& file, uint32_t table_bytes, size_t capacity_tables)
    : m_loop(loop), m_file(file), m_table_bytes(table_bytes), m_capacity(std::max<size_t>(2, capacity_tables))
{
}

void TableCache::evict_if_full()
{
    while (m_tables.size() >= m_capacity) {
        auto victim = m_tables.end();
        for (auto it = m_tables.begin(); it != m_tables.end(); ++it) {
            if (it->second.use_count() > 1 || !it->second->loaded || it->second->dirty())
                continue;
            if (victim == m_tables.end() || it->second->last_use < victim->second->last_use)
                victim = it;
        }
        if (victim == m_tables.end())
            return; // everything is in use: grow past capacity for now
        m_tables.erase(victim);
    }
}

Task<Result<TablePtr>> TableCache::get(uint64_t offset)
{
    auto it = m_tables.find(offset);
    if (it != m_tables.end()) {
        TablePtr table = it->second;
        table->last_use = ++m_clock;
        if (!table->loaded) {
            co_await table->ready.wait();
            if (table->failed)
                co_return Error::from_errno(EIO, "Could not read qcow2 metadata table");
        }
        co_return table;
    }
    evict_if_full();
    auto table = std::make_shared<CachedTable>(m_loop);
    table->offset = offset;
    table->data.resize(m_table_bytes);
    table->last_use = ++m_clock;
    m_tables[offset] = table;
    auto r = co_await read_clamped(m_file, offset, table->data.data(), m_table_bytes);
    if (!r) {
        table->failed = true;
        table->ready.set();
        auto again = m_tables.find(offset);
        if (again != m_tables.end() && again->second == table)
            m_tables.erase(again);
        co_return std::move(r).error();
    }
    table->loaded = true;
    table->ready.set();
    co_return table;
}

TablePtr TableCache::create(uint64_t offset)
{
    drop(offset);
    evict_if_full();
    auto table = std::make_shared<CachedTable>(m_loop);
    table->offset = offset;
    table->data.assign(m_table_bytes, 0);
    table->loaded = true;
    table->ready.set();
    table->last_use = ++m_clock;
    m_tables[offset] = table;
    return table;
}

Task<Result<void>> TableCache::write(const CachedTable& table, size_t begin, size_t end)
{
    size_t align = std::max<size_t>(512, m_file.request_alignment());
    align = std::min<size_t>(align, m_table_bytes);
    begin = begin / align * align;
    end = std::min<size_t>((end + align - 1) / align * align, m_table_bytes);
    // The buffer is the cached table itself; it stays alive while the
    // caller holds its TablePtr.
    co_return co_await m_file.pwritev(table.offset + begin,
                                      QIov(const_cast<uint8_t*>(table.data.data()) + begin, end - begin),
                                      RequestFlags::None);
}

void TableCache::mark_dirty(CachedTable& table, size_t begin, size_t end, DataOrder order)
{
    if (begin >= end)
        return;
    if (order == DataOrder::Needed)
        m_needs_data_order = true;
    if (!table.dirty()) {
        table.dirty_begin = begin;
        table.dirty_end = end;
        ++m_dirty;
        return;
    }
    table.dirty_begin = std::min(table.dirty_begin, begin);
    table.dirty_end = std::max(table.dirty_end, end);
}

Task<Result<void>> TableCache::write_dirty()
{
    if (m_dirty == 0)
        co_return ok();
    std::vector<TablePtr> dirty;
    for (auto& [offset, table] : m_tables)
        if (table->dirty())
            dirty.push_back(table);
    std::sort(dirty.begin(), dirty.end(), [](const TablePtr& a, const TablePtr& b) { return a->offset < b->offset; });
    for (const TablePtr& table : dirty) {
        CO_TRY(co_await write(*table, table->dirty_begin, table->dirty_end));
        table->dirty_begin = table->dirty_end = 0;
        --m_dirty;
    }
    // Callers do not change tables while this runs, so everything marked
    // is written now.
    m_needs_data_order = false;
    co_return ok();
}

void TableCache::drop(uint64_t offset)
{
    auto it = m_tables.find(offset);
    if (it == m_tables.end())
        return;
    if (it->second->dirty())
        --m_dirty;
    m_tables.erase(it);
}

} // namespace kiln::block::qcow2
