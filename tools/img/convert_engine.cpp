#include <algorithm>

#include "block/qiov.h"
#include "tools/img/convert.h"

namespace kiln::tools {

ConvertEngine::ConvertEngine(EventLoop& loop, std::vector<block::BlockNode*> sources, block::BlockNode& target,
    ConvertSettings settings, Progress& progress)
    : m_loop(loop)
    , m_sources(std::move(sources))
    , m_target(target)
    , m_settings(settings)
    , m_progress(progress)
    , m_lock(loop)
    , m_workers(loop)
{
    for (auto* s : m_sources) {
        m_source_start.push_back(m_total_bytes);
        m_total_bytes += s->size_bytes();
    }
    // Compressed writes take whole clusters; a chunk holds several, all
    // compressed at once (see copy_chunk).
    if (m_settings.compressed && m_target.cluster_size()) {
        m_alignment = m_target.cluster_size();
        m_settings.buf_bytes = std::max<uint64_t>(m_alignment, m_settings.buf_bytes / m_alignment * m_alignment);
    }
}

std::pair<size_t, uint64_t> ConvertEngine::locate(uint64_t offset) const
{
    size_t i = m_sources.size() - 1;
    while (i > 0 && m_source_start[i] > offset)
        --i;
    return { i, offset - m_source_start[i] };
}

Task<Result<void>> ConvertEngine::run()
{
    CO_TRY(co_await count_data_bytes());
    m_progress.start();
    int n = std::max(1, m_settings.coroutines);
    for (int i = 0; i < n; ++i) {
        m_workers.add();
        spawn(worker());
    }
    co_await m_workers.wait_idle();
    if (m_error)
        co_return *m_error;
    m_progress.set(100);
    co_return ok();
}

Task<void> ConvertEngine::worker()
{
    std::vector<uint8_t> buf(m_settings.buf_bytes);
    for (;;) {
        Chunk chunk;
        auto more = co_await next_chunk(chunk);
        if (!more) {
            if (!m_error) {
                m_error = more.error();
                abort_waiters();
            }
            break;
        }
        if (!*more)
            break;
        auto r = co_await copy_chunk(chunk, buf);
        if (!r && !m_error) {
            m_error = std::move(r).error();
            abort_waiters();
        }
        if (m_error)
            break;
    }
    m_workers.done();
}

// The run of one kind that starts at `offset` (it never crosses the end
// of a source).
Task<Result<ConvertEngine::Run>> ConvertEngine::status_at(uint64_t offset)
{
    auto [index, local] = locate(offset);
    block::BlockNode* src = m_sources[index];
    uint64_t source_end = m_source_start[index] + src->size_bytes();
    uint64_t want = source_end - offset;
    Kind kind = Kind::Data;
    // With a backing file on the target only what the source's top layer
    // holds differs from it; otherwise the whole chain counts.
    auto st = m_settings.target_has_backing ? co_await src->block_status(local, want)
                                            : co_await src->block_status_above(local, want);
    if (!st)
        co_return Error(st.error().kind(),
            "error while reading block status at offset " + std::to_string(offset) + ": " + st.error().message());
    bool unallocated = !(st->flags & block::BlockStatus::Allocated);
    // Unallocated with nothing below (or past a shorter backing file)
    // reads as zeroes, which the target's backing may not hold.
    bool reads_zero = unallocated && (!src->backing() || local >= src->backing()->size_bytes());
    if (m_settings.target_has_backing && unallocated && !reads_zero)
        kind = Kind::Backing;
    else if ((st->flags & block::BlockStatus::Zero) || reads_zero)
        kind = Kind::Zero;
    if (m_settings.min_sparse_bytes == 0 && kind == Kind::Zero)
        kind = Kind::Data; // -S 0: fully allocate the target
    uint64_t end = offset + std::min(std::max<uint64_t>(st->bytes, 1), want);
    if (m_alignment > 1 && end < source_end) {
        // Compressed targets take whole clusters: a run that ends inside
        // one stops at the cluster start, or, if shorter than a cluster,
        // is copied as data up to the cluster end (reads give zeroes).
        uint64_t aligned = end / m_alignment * m_alignment;
        if (aligned > offset) {
            end = aligned;
        } else {
            end = std::min(source_end, (offset / m_alignment + 1) * m_alignment);
            kind = Kind::Data;
        }
    }
    co_return Run { kind, end };
}

Task<Result<void>> ConvertEngine::count_data_bytes()
{
    // Progress counts data only, as qemu-img's does: first sum it up.
    for (uint64_t offset = 0; offset < m_total_bytes;) {
        Run run = CO_TRY(co_await status_at(offset));
        if (run.kind == Kind::Data)
            m_data_bytes += run.end - offset;
        offset = run.end;
    }
    co_return ok();
}

Task<Result<bool>> ConvertEngine::next_chunk(Chunk& chunk)
{
    co_await m_lock.lock();
    CoLockGuard guard(m_lock);
    if (m_error || m_next_offset >= m_total_bytes)
        co_return false;
    uint64_t offset = m_next_offset;
    if (m_status_end <= offset) {
        auto run = co_await status_at(offset);
        if (!run)
            co_return std::move(run).error();
        m_status_kind = run->kind;
        m_status_end = run->end;
    }
    uint64_t end = std::min(m_status_end, offset + m_settings.buf_bytes);
    chunk.offset = offset;
    chunk.bytes = end - offset;
    chunk.kind = m_status_kind;
    chunk.seq = m_next_seq++;
    m_next_offset = end;
    co_return true;
}

Task<void> ConvertEngine::wait_turn(uint64_t seq)
{
    if (m_settings.out_of_order || m_write_turn == seq || m_error)
        co_return;
    struct Awaiter {
        ConvertEngine* engine;
        uint64_t seq;
        bool await_ready() { return engine->m_write_turn == seq || engine->m_error; }
        void await_suspend(std::coroutine_handle<> h) { engine->m_turn_waiters[seq] = h; }
        void await_resume() { }
    };
    co_await Awaiter { this, seq };
}

void ConvertEngine::finish_turn()
{
    ++m_write_turn;
    auto it = m_turn_waiters.find(m_write_turn);
    if (it != m_turn_waiters.end()) {
        auto h = it->second;
        m_turn_waiters.erase(it);
        m_loop.schedule([h] { h.resume(); });
    }
}

void ConvertEngine::abort_waiters()
{
    // Failing: release everyone waiting for a turn; they see m_error.
    for (auto& [seq, h] : m_turn_waiters) {
        auto handle = h;
        m_loop.schedule([handle] { handle.resume(); });
    }
    m_turn_waiters.clear();
}

Task<Result<void>> ConvertEngine::copy_chunk(const Chunk& chunk, std::vector<uint8_t>& buf)
{
    if (chunk.kind == Kind::Data) {
        // Reads of a chunk may cross sources only at their boundary; chunks
        // never do because status runs end at source_end.
        auto [index, local] = locate(chunk.offset);
        auto r = co_await m_sources[index]->preadv(local, block::QIov(buf.data(), chunk.bytes));
        if (!r)
            co_return Error(r.error().kind(),
                "error while reading at byte " + std::to_string(chunk.offset) + ": " + r.error().message());
    }
    co_await wait_turn(chunk.seq);
    if (m_error)
        co_return ok();
    Result<void> r = ok();
    if (chunk.kind == Kind::Data && m_settings.compressed) {
        // The target places compressed clusters in the order the writes
        // start: start every cluster of the chunk in turn, then let the
        // next chunk start while these compress, so many clusters (up to
        // -m chunks of them) compress at once.
        CoWaitGroup group(m_loop);
        uint64_t step = std::max<uint64_t>(m_alignment, 1);
        std::vector<Result<void>> results((chunk.bytes + step - 1) / step, ok());
        for (uint64_t done = 0, i = 0; done < chunk.bytes; done += step, ++i) {
            group.add();
            // spawn runs the write up to its first suspension: it has
            // taken its place in the target's order when spawn returns.
            spawn([](ConvertEngine& self, uint64_t offset, uint8_t* data, uint64_t bytes, Result<void>& out,
                     CoWaitGroup& g) -> Task<void> {
                out = co_await self.write_data(offset, data, bytes);
                if (out)
                    self.count_done(bytes); // per cluster, as qemu-img's progress moves
                g.done();
            }(*this, chunk.offset + done, buf.data() + done, std::min(step, chunk.bytes - done), results[i], group));
        }
        if (!m_settings.out_of_order)
            finish_turn();
        co_await group.wait_idle();
        for (auto& one : results)
            if (!one)
                co_return std::move(one);
        co_return ok();
    }
    if (chunk.kind == Kind::Data)
        r = co_await write_data(chunk.offset, buf.data(), chunk.bytes);
    else if (chunk.kind == Kind::Zero && !m_settings.target_zero_init)
        r = co_await write_zeroes(chunk.offset, chunk.bytes);
    if (!m_settings.out_of_order)
        finish_turn();
    if (!r)
        co_return r;
    if (chunk.kind == Kind::Data)
        count_done(chunk.bytes);
    co_return ok();
}

void ConvertEngine::count_done(uint64_t bytes)
{
    m_done_bytes += bytes;
    if (m_data_bytes)
        m_progress.set(100.0 * double(m_done_bytes) / double(m_data_bytes));
}

Task<Result<void>> ConvertEngine::write_zeroes(uint64_t offset, uint64_t bytes)
{
    auto r = co_await m_target.pwrite_zeroes(offset, bytes, block::RequestFlags::MayUnmap);
    if (!r)
        co_return Error(
            r.error().kind(), "error while writing at byte " + std::to_string(offset) + ": " + r.error().message());
    co_return ok();
}

Task<Result<void>> ConvertEngine::write_data(uint64_t offset, uint8_t* data, uint64_t bytes)
{
    auto fail = [&](const Error& e, uint64_t at) {
        return Error(e.kind(), "error while writing at byte " + std::to_string(at) + ": " + e.message());
    };
    if (m_settings.compressed) {
        uint64_t step = std::max<uint64_t>(m_alignment, 1);
        for (uint64_t done = 0; done < bytes; done += step) {
            uint64_t n = std::min(step, bytes - done);
            if (block::buffer_is_zero(data + done, n)) {
                if (!m_settings.target_zero_init)
                    CO_TRY(co_await write_zeroes(offset + done, n));
                continue;
            }
            auto r = co_await m_target.pwritev_compressed(offset + done, block::QIov(data + done, n));
            if (!r)
                co_return fail(r.error(), offset + done);
        }
        co_return ok();
    }
    uint64_t unit = m_settings.min_sparse_bytes;
    if (unit == 0) {
        auto r = co_await m_target.pwritev(offset, block::QIov(data, bytes), block::RequestFlags::None);
        if (!r)
            co_return fail(r.error(), offset);
        co_return ok();
    }
    // Split into runs of data and runs of at least `unit` zero bytes.
    uint64_t pos = 0;
    while (pos < bytes) {
        uint64_t n = std::min(unit, bytes - pos);
        bool zero = block::buffer_is_zero(data + pos, n);
        uint64_t run = n;
        while (pos + run < bytes) {
            uint64_t m = std::min(unit, bytes - pos - run);
            if (block::buffer_is_zero(data + pos + run, m) != zero)
                break;
            run += m;
        }
        if (zero) {
            if (!m_settings.target_zero_init)
                CO_TRY(co_await write_zeroes(offset + pos, run));
        } else {
            auto r = co_await m_target.pwritev(offset + pos, block::QIov(data + pos, run), block::RequestFlags::None);
            if (!r)
                co_return fail(r.error(), offset + pos);
        }
        pos += run;
    }
    co_return ok();
}

} // namespace kiln::tools
