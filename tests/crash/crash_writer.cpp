// crash_writer: writes a deterministic sequence of non-overlapping
// requests into an image through the block layer, many in flight, and
// reports on stdout each time a flush completes ("flushed N": requests
// 0..N-1 are durable). The crash test kills it with SIGKILL at a random
// moment and then checks the image. `verify N` reads the image back and
// checks requests 0..N-1 and that untouched bytes kept the backing content.
// `write-c`/`verify-c` do the same with compressed writes of whole
// clusters; FLUSH_EVERY 0 means no flush until the end.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "block/context.h"
#include "util/co_sync.h"

using namespace kiln;
using namespace kiln::block;

namespace {

constexpr uint64_t k_slot_bytes = 8192;

struct Request {
    uint64_t offset;
    uint32_t length;
    uint8_t pattern;
    bool compressed = false;
};

// Compressed requests vary every 512 bytes so they compress, but not to
// nothing.
uint8_t request_byte(const Request& r, uint64_t k) { return r.compressed ? uint8_t(r.pattern + (k >> 9) % 4) : r.pattern; }

// Request i lives in its own 8 KiB slot (a random permutation of slots) at
// a random sub-offset, so requests never overlap but share clusters.
// cluster_bytes > 0: compressed requests of whole clusters.
std::vector<Request> make_requests(uint64_t image_bytes, uint32_t seed, size_t count, uint64_t cluster_bytes = 0)
{
    std::mt19937_64 rng(seed);
    size_t slots = image_bytes / k_slot_bytes;
    std::vector<size_t> order(slots);
    for (size_t i = 0; i < slots; ++i)
        order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<Request> out;
    if (cluster_bytes) {
        // Whole clusters, each written once, in random order.
        size_t clusters = image_bytes / cluster_bytes;
        std::vector<size_t> perm(clusters);
        for (size_t i = 0; i < clusters; ++i)
            perm[i] = i;
        std::shuffle(perm.begin(), perm.end(), rng);
        for (size_t i = 0; i < count && i < clusters; ++i)
            out.push_back({perm[i] * cluster_bytes, uint32_t(cluster_bytes), uint8_t(1 + (i % 255)), true});
        return out;
    }
    for (size_t i = 0; i < count && i < slots; ++i) {
        uint32_t len = 1 + uint32_t(rng() % k_slot_bytes);
        if (rng() % 2)
            len = 512 * (1 + uint32_t(rng() % 16)); // sector-sized ones too
        uint32_t start = uint32_t(rng() % (k_slot_bytes - len + 1));
        out.push_back({order[i] * k_slot_bytes + start, len, uint8_t(1 + (i % 255))});
    }
    return out;
}

Task<Result<void>> write_all(BlockNode& node, const std::vector<Request>& reqs, size_t flush_every)
{
    EventLoop& loop = node.context().loop();
    CoWaitGroup group(loop);
    std::vector<Result<void>> results(reqs.size(), ok());
    size_t next_flush = flush_every;
    for (size_t i = 0; i < reqs.size(); ++i) {
        // Keep up to 32 requests in flight.
        while (group.count() >= 32)
            co_await loop.yield();
        group.add();
        spawn([](BlockNode& n, const Request& r, Result<void>& out, CoWaitGroup& g) -> Task<void> {
            std::vector<uint8_t> buf(r.length);
            for (uint32_t k = 0; k < r.length; ++k)
                buf[k] = request_byte(r, k);
            if (r.compressed)
                out = co_await n.pwritev_compressed(r.offset, QIov(buf.data(), buf.size()));
            else
                out = co_await n.pwritev(r.offset, QIov(buf.data(), buf.size()), RequestFlags::None);
            g.done();
        }(node, reqs[i], results[i], group));
        if (flush_every && i + 1 == next_flush) {
            co_await group.wait_idle();
            for (size_t j = 0; j <= i; ++j)
                CO_TRY(std::move(results[j]));
            CO_TRY(co_await node.flush());
            std::printf("flushed %zu\n", i + 1);
            std::fflush(stdout);
            next_flush += flush_every;
        }
    }
    co_await group.wait_idle();
    CO_TRY(co_await node.flush());
    std::printf("flushed %zu\n", reqs.size());
    std::fflush(stdout);
    co_return ok();
}

uint8_t backing_byte(uint64_t offset) { return uint8_t((offset / 4096) * 7 + 3); }

Task<Result<void>> verify(BlockNode& node, const std::vector<Request>& reqs, size_t durable, bool has_backing)
{
    std::vector<uint8_t> buf(k_slot_bytes);
    for (size_t i = 0; i < durable; ++i) {
        const Request& r = reqs[i];
        buf.resize(std::max<size_t>(buf.size(), r.length));
        CO_TRY(co_await node.preadv(r.offset, QIov(buf.data(), r.length)));
        for (uint32_t k = 0; k < r.length; ++k)
            if (buf[k] != request_byte(r, k))
                co_return Error::corrupt("request " + std::to_string(i) + " at offset " + std::to_string(r.offset)
                                         + ": byte " + std::to_string(k) + " is " + std::to_string(buf[k])
                                         + ", expected " + std::to_string(request_byte(r, k)));
    }
    // Bytes outside every request (durable or not) keep the backing content
    // (or zero): a crash must not damage data nobody wrote.
    uint64_t size = node.size_bytes();
    std::vector<uint8_t> touched(size / k_slot_bytes, 0);
    for (auto& r : reqs)
        for (uint64_t slot = r.offset / k_slot_bytes; slot * k_slot_bytes < r.offset + r.length; ++slot)
            touched[slot] = 1;
    for (uint64_t slot = 0; slot < touched.size(); ++slot) {
        if (touched[slot])
            continue;
        uint64_t off = slot * k_slot_bytes;
        CO_TRY(co_await node.preadv(off, QIov(buf.data(), k_slot_bytes)));
        for (uint64_t k = 0; k < k_slot_bytes; ++k) {
            uint8_t want = has_backing ? backing_byte(off + k) : 0;
            if (buf[k] != want)
                co_return Error::corrupt("untouched byte at offset " + std::to_string(off + k) + " changed");
        }
    }
    co_return ok();
}

Task<Result<void>> fill_backing(BlockNode& node)
{
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t off = 0; off < node.size_bytes(); off += buf.size()) {
        for (size_t k = 0; k < buf.size(); ++k)
            buf[k] = backing_byte(off + k);
        CO_TRY(co_await node.pwritev(off, QIov(buf.data(), buf.size()), RequestFlags::None));
    }
    co_return co_await node.flush();
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 4) {
        std::fprintf(stderr,
                     "usage: crash_writer write|write-c|verify|verify-c|fill-backing IMAGE SEED [COUNT FLUSH_EVERY | DURABLE BACKED]\n");
        return 2;
    }
    std::string mode = argv[1], image = argv[2];
    uint32_t seed = uint32_t(std::stoul(argv[3]));
    auto loop = EventLoop::create().value();
    ThreadPool pool(*loop);
    BlockContext ctx(*loop, pool);
    auto run = [&]() -> Task<Result<void>> {
        ImageSpec spec;
        spec.filename = image;
        spec.format = "qcow2";
        spec.flags.read_write = mode != "verify" && mode != "verify-c";
        if (mode == "fill-backing")
            spec.format = "raw";
        auto node = CO_TRY(co_await ctx.open_image(spec));
        Result<void> r = ok();
        bool compressed = mode == "write-c" || mode == "verify-c";
        uint64_t cluster_bytes = compressed ? node->cluster_size() : 0;
        if (mode == "write" || mode == "write-c") {
            size_t count = argc > 4 ? std::stoul(argv[4]) : 2000;
            size_t flush_every = argc > 5 ? std::stoul(argv[5]) : 50;
            r = co_await write_all(*node, make_requests(node->size_bytes(), seed, count, cluster_bytes), flush_every);
        } else if (mode == "verify" || mode == "verify-c") {
            size_t durable = argc > 4 ? std::stoul(argv[4]) : 0;
            bool backed = argc > 5 && std::string(argv[5]) == "1";
            size_t count = argc > 6 ? std::stoul(argv[6]) : 2000;
            r = co_await verify(*node, make_requests(node->size_bytes(), seed, count, cluster_bytes), durable, backed);
        } else if (mode == "fill-backing") {
            r = co_await fill_backing(*node);
        } else {
            r = Error::invalid("unknown mode '" + mode + "'");
        }
        auto closed = co_await node->close();
        CO_TRY(std::move(r));
        co_return closed;
    };
    auto result = loop->run_until_complete(run());
    if (!result) {
        std::fprintf(stderr, "crash_writer: %s\n", result.error().message().c_str());
        return 1;
    }
    return 0;
}
