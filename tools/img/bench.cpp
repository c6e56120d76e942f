// kiln-img bench [-c count] [-d depth] [-f fmt] [--flush-interval=N]
// [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q]
// [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename
//
// `depth` coroutines keep that many requests in flight, as qemu-img's
// callback chain does.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "block/qiov.h"
#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "util/co_sync.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

struct BenchArgs {
    CommonOptions common;
    std::string filename;
    bool write = false;
    bool drain = true;
    uint64_t count = 75000;
    uint64_t depth = 64;
    uint64_t offset = 0;
    uint64_t buf_bytes = 4096;
    std::optional<uint64_t> step;
    uint64_t flush_interval = 0;
    int pattern = 0;
    block::CacheMode cache = block::CacheMode::Writeback;
    std::optional<block::AioEngine> aio;
    bool native = false;
};

class Bench {
public:
    Bench(EventLoop& loop, block::BlockNode& node, const BenchArgs& args)
        : m_loop(loop), m_node(node), m_args(args), m_step(args.step.value_or(args.buf_bytes)),
          m_next_offset(args.offset), m_remaining(args.count), m_in_flight(loop), m_workers(loop), m_drained(loop)
    {
        m_drained.set();
    }

    Task<Result<void>> run()
    {
        size_t align = 4096;
        size_t bytes = (m_args.buf_bytes + align - 1) / align * align;
        // Only as many buffers as requests can be in flight at once.
        uint64_t n = std::min<uint64_t>(m_args.depth, std::max<uint64_t>(m_args.count, 1));
        m_buffers.resize(n);
        for (auto& b : m_buffers) {
            b = static_cast<uint8_t*>(std::aligned_alloc(align, bytes ? bytes : align));
            if (!b) {
                for (auto* p : m_buffers)
                    std::free(p);
                co_return Error::from_errno(ENOMEM, "Could not allocate " + std::to_string(n) + " buffers of "
                                                        + std::to_string(bytes) + " bytes");
            }
            std::memset(b, m_args.pattern, bytes);
        }
        for (uint64_t i = 0; i < n; ++i) {
            m_workers.add();
            spawn(worker(m_buffers[i]));
        }
        co_await m_workers.wait_idle();
        for (auto* b : m_buffers)
            std::free(b);
        if (m_error)
            co_return *m_error;
        co_return ok();
    }

private:
    uint64_t take_offset()
    {
        uint64_t offset = m_next_offset;
        m_next_offset += m_step;
        uint64_t size = m_node.size_bytes();
        if (size <= m_args.buf_bytes)
            m_next_offset = 0;
        else
            m_next_offset %= size - m_args.buf_bytes;
        return offset;
    }

    Task<void> worker(uint8_t* buf)
    {
        while (m_remaining > 0 && !m_error) {
            --m_remaining;
            // A drain for a flush holds new submissions back.
            co_await m_drained.wait();
            uint64_t offset = take_offset();
            m_in_flight.add();
            block::QIov qiov(buf, m_args.buf_bytes);
            Result<void> r = m_args.write ? co_await m_node.pwritev(offset, qiov, block::RequestFlags::None)
                                          : co_await m_node.preadv(offset, qiov);
            m_in_flight.done();
            if (!r) {
                if (!m_error)
                    m_error = Error(r.error().kind(), std::string("Failed request: ") + r.error().message());
                break;
            }
            ++m_completed;
            if (m_args.flush_interval && m_completed % m_args.flush_interval == 0) {
                if (m_args.drain) {
                    m_drained.reset();
                    co_await m_in_flight.wait_idle();
                }
                auto f = co_await m_node.flush();
                m_drained.set();
                if (!f && !m_error)
                    m_error = Error(f.error().kind(), std::string("Failed flush request: ") + f.error().message());
            }
        }
        m_workers.done();
    }

    EventLoop& m_loop;
    block::BlockNode& m_node;
    const BenchArgs& m_args;
    uint64_t m_step;
    uint64_t m_next_offset;
    uint64_t m_remaining;
    uint64_t m_completed = 0;
    CoWaitGroup m_in_flight;
    CoWaitGroup m_workers;
    CoEvent m_drained;
    std::vector<uint8_t*> m_buffers;
    std::optional<Error> m_error;
};

Task<int> do_bench(ToolEnv& env, BenchArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = args.write;
    req.flags.cache = args.cache;
    req.flags.aio = args.aio;
    // -n asks for kernel AIO whatever -i says, as qemu-img's flag does.
    if (args.native)
        req.flags.aio = block::AioEngine::Native;
    if (req.flags.aio == block::AioEngine::Native && !block::cache_uses_o_direct(args.cache)) {
        report_error("Could not open '" + args.filename
                     + "': aio=native was specified, but it requires cache.direct=on, which was not specified.");
        co_return 1;
    }
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    std::printf("Sending %" PRIu64 " %s requests, %" PRIu64 " bytes each, %" PRIu64 " in parallel (starting at "
                "offset %" PRIu64 ", step size %" PRIu64 ")\n",
                args.count, args.write ? "write" : "read", args.buf_bytes, args.depth, args.offset,
                args.step.value_or(args.buf_bytes));
    if (args.flush_interval)
        std::printf("Sending flush every %" PRIu64 " requests\n", args.flush_interval);
    std::fflush(stdout);
    auto start = std::chrono::steady_clock::now();
    Bench bench(env.loop(), *image->node, args);
    auto r = co_await bench.run();
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int ret = 0;
    if (!r) {
        report_error(r.error().message());
        ret = 1;
    } else {
        std::printf("Run completed in %3.3f seconds.\n", elapsed);
    }
    co_return co_await close_with_status(*image, ret);
}

} // namespace

int img_bench(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_FLUSH_INTERVAL = 300, OPT_PATTERN, OPT_NO_DRAIN };
    BenchArgs args;
    auto number = [](const char* text, const char* what, uint64_t min, uint64_t max) -> std::optional<uint64_t> {
        auto v = parse_size(text);
        if (!v || *v < min || *v > max) {
            report_error(std::string("Invalid ") + what + " specified");
            return std::nullopt;
        }
        return *v;
    };
    int rc = parse_options(
        env, argc, argv, ":hc:d:f:ni:o:qs:S:t:wU", k_long_image_opts | k_long_force_share,
        {{"flush-interval", required_argument, nullptr, OPT_FLUSH_INTERVAL},
         {"pattern", required_argument, nullptr, OPT_PATTERN},
         {"no-drain", no_argument, nullptr, OPT_NO_DRAIN}},
        args.common, [&](int c) {
            std::optional<uint64_t> v;
            switch (c) {
            case 'c':
                if (!(v = number(optarg, "request count", 1, INT32_MAX)))
                    return 1;
                args.count = *v;
                break;
            case 'd':
                if (!(v = number(optarg, "queue depth", 1, INT32_MAX)))
                    return 1;
                args.depth = *v;
                break;
            case 'n': args.native = true; break;
            case 'i': {
                auto engine = block::parse_aio_engine(optarg);
                if (!engine) {
                    report_error(std::string("Invalid aio option: ") + optarg);
                    return 1;
                }
                args.aio = *engine;
                break;
            }
            case 'o':
                if (!(v = number(optarg, "offset", 0, INT64_MAX)))
                    return 1;
                args.offset = *v;
                break;
            case 's':
                if (!(v = number(optarg, "buffer size", 1, INT32_MAX)))
                    return 1;
                args.buf_bytes = *v;
                break;
            case 'S':
                if (!(v = number(optarg, "step size", 0, INT32_MAX)))
                    return 1;
                args.step = *v;
                break;
            case 't': {
                auto mode = block::parse_cache_mode(optarg);
                if (!mode) {
                    report_error("Invalid cache mode");
                    return 1;
                }
                args.cache = *mode;
                break;
            }
            case 'w': args.write = true; break;
            case OPT_FLUSH_INTERVAL:
                if (!(v = number(optarg, "flush interval", 0, INT32_MAX)))
                    return 1;
                args.flush_interval = *v;
                break;
            case OPT_PATTERN:
                if (!(v = number(optarg, "pattern byte", 0, 255)))
                    return 1;
                args.pattern = int(*v);
                break;
            case OPT_NO_DRAIN: args.drain = false; break;
            }
            return k_parse_continue;
        });
    if (rc != k_parse_continue)
        return rc;
    if (optind != argc - 1)
        return error_exit("Expecting one image file name");
    args.filename = argv[optind];
    if (args.flush_interval && !args.write) {
        report_error("--flush-interval is only available in write tests");
        return 1;
    }
    if (args.flush_interval && args.flush_interval < args.depth) {
        report_error("Flush interval can't be smaller than depth");
        return 1;
    }
    return env.run(do_bench(env, args));
}

} // namespace kiln::tools
