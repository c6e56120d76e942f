// The copy engine of `kiln-img convert`: many coroutines copy chunks of
// the (concatenated) sources into the target, skipping what reads as
// zero where the target is known to read zero, writing in order unless
// -W allows otherwise.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "block/node.h"
#include "tools/common/progress.h"
#include "util/co_sync.h"

namespace kiln::tools {

struct ConvertSettings {
    int coroutines = 8; // -m
    bool out_of_order = false; // -W
    bool compressed = false; // -c
    uint64_t min_sparse_bytes = 4096; // -S (0: copy everything as data)
    bool target_has_backing = false; // -B, or -n onto an image with a backing file
    bool target_zero_init = true; // unwritten target ranges read as zero
    uint64_t buf_bytes = 2 << 20;
};

class ConvertEngine {
public:
    ConvertEngine(EventLoop& loop, std::vector<block::BlockNode*> sources, block::BlockNode& target,
        ConvertSettings settings, Progress& progress);

    // Runs the copy; the error says which byte failed.
    Task<Result<void>> run();

private:
    enum class Kind { Data, Zero, Backing };
    struct Chunk {
        uint64_t offset = 0; // in the concatenated source
        uint64_t bytes = 0;
        Kind kind = Kind::Data;
        uint64_t seq = 0;
    };

    struct Run {
        Kind kind;
        uint64_t end;
    };
    Task<Result<Run>> status_at(uint64_t offset);
    Task<Result<void>> count_data_bytes();
    Task<void> worker();
    Task<Result<bool>> next_chunk(Chunk& chunk);
    Task<Result<void>> copy_chunk(const Chunk& chunk, std::vector<uint8_t>& buf);
    Task<Result<void>> write_data(uint64_t offset, uint8_t* data, uint64_t bytes);
    Task<Result<void>> write_zeroes(uint64_t offset, uint64_t bytes);
    // Progress: `bytes` more of the data are written.
    void count_done(uint64_t bytes);
    Task<void> wait_turn(uint64_t seq);
    void finish_turn();
    void abort_waiters();
    // Source index and offset inside it for a global offset.
    std::pair<size_t, uint64_t> locate(uint64_t offset) const;

    EventLoop& m_loop;
    std::vector<block::BlockNode*> m_sources;
    std::vector<uint64_t> m_source_start;
    block::BlockNode& m_target;
    ConvertSettings m_settings;
    Progress& m_progress;
    uint64_t m_total_bytes = 0;
    uint64_t m_alignment = 1;

    CoMutex m_lock;
    uint64_t m_next_offset = 0;
    uint64_t m_next_seq = 0;
    // Cached status run: [m_status_start, m_status_end) has m_status_kind.
    uint64_t m_status_end = 0;
    Kind m_status_kind = Kind::Data;

    uint64_t m_write_turn = 0;
    std::map<uint64_t, std::coroutine_handle<>> m_turn_waiters;
    uint64_t m_done_bytes = 0;
    uint64_t m_data_bytes = 0; // what progress counts
    std::optional<Error> m_error;
    CoWaitGroup m_workers;
};

} // namespace kiln::tools
