// Random non-overlapping write requests (so the expected image is defined
// whatever order they complete in), for the concurrency tests.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace kiln::block::test {

struct WriteRequest {
    uint64_t offset;
    std::vector<uint8_t> data;
};

// `count` requests of 1..max_sectors sectors inside [0, size); `expect`
// (size bytes) receives their data.
inline std::vector<WriteRequest> disjoint_requests(uint64_t size, size_t count, uint64_t max_sectors, uint32_t seed,
                                                   std::vector<uint8_t>& expect)
{
    std::vector<WriteRequest> reqs;
    std::vector<bool> used(size / 512, false);
    std::mt19937 rng(seed);
    expect.assign(size, 0);
    while (reqs.size() < count) {
        uint64_t len = 512 * (1 + rng() % max_sectors);
        uint64_t off = (rng() % ((size - len) / 512)) * 512;
        bool clash = false;
        for (uint64_t s = off / 512; s < (off + len) / 512; ++s)
            clash |= used[s];
        if (clash)
            continue;
        for (uint64_t s = off / 512; s < (off + len) / 512; ++s)
            used[s] = true;
        std::vector<uint8_t> data(len);
        for (auto& b : data)
            b = uint8_t(rng() | 1);
        std::copy(data.begin(), data.end(), expect.begin() + off);
        reqs.push_back({off, std::move(data)});
    }
    return reqs;
}

} // namespace kiln::block::test
