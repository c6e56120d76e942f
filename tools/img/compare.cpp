// kiln-img compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt]
// [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2
//
// Exit codes as qemu-img: 0 identical, 1 different, 2 error opening,
// 3 error checking allocation, 4 error reading.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "block/qiov.h"
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

constexpr uint64_t k_io_buf_bytes = 2 << 20;
constexpr uint64_t k_sector_bytes = 512;

struct CompareArgs {
    CommonOptions common;
    std::string filename[2];
    std::string format[2];
    bool strict = false;
    bool progress = false;
};

// Bytes from the start that compare equal in sector steps, or the run of
// differing sectors; returns true if the first sector differs.
bool compare_buffers(const uint8_t* a, const uint8_t* b, uint64_t bytes, uint64_t* pnum)
{
    uint64_t i = std::min(bytes, k_sector_bytes);
    bool res = std::memcmp(a, b, i) != 0;
    while (i < bytes) {
        uint64_t len = std::min(bytes - i, k_sector_bytes);
        if ((std::memcmp(a + i, b + i, len) != 0) != res)
            break;
        i += len;
    }
    *pnum = i;
    return res;
}

std::optional<uint64_t> find_nonzero(const uint8_t* buf, uint64_t n)
{
    for (uint64_t i = 0; i < n; i += k_sector_bytes)
        if (!block::buffer_is_zero(buf + i, std::min(k_sector_bytes, n - i)))
            return i;
    return std::nullopt;
}

class Comparer {
public:
    Comparer(const CompareArgs& args) : m_args(args), m_buf1(k_io_buf_bytes), m_buf2(k_io_buf_bytes) {}

    Task<int> run(block::BlockNode& n1, block::BlockNode& n2)
    {
        uint64_t size1 = n1.size_bytes(), size2 = n2.size_bytes();
        uint64_t total = std::min(size1, size2);
        uint64_t progress_base = std::max(size1, size2);
        Progress progress(m_args.progress && !m_args.common.quiet);
        progress.start();
        uint64_t done = 0;
        auto advance = [&](uint64_t chunk) {
            done += chunk;
            if (progress_base)
                progress.set(double(done) * 100.0 / double(progress_base));
        };
        if (m_args.strict && size1 != size2) {
            qprintf(m_args.common.quiet, "Strict mode: Image size mismatch!\n");
            co_return 1;
        }
        uint64_t offset = 0;
        constexpr uint32_t mask = block::BlockStatus::Data | block::BlockStatus::Zero
                                  | block::BlockStatus::Allocated | block::BlockStatus::OffsetValid;
        while (offset < total) {
            auto s1 = co_await n1.block_status_above(offset, size1 - offset);
            if (!s1) {
                report_error("Sector allocation test failed for " + m_args.filename[0]);
                co_return 3;
            }
            auto s2 = co_await n2.block_status_above(offset, size2 - offset);
            if (!s2) {
                report_error("Sector allocation test failed for " + m_args.filename[1]);
                co_return 3;
            }
            bool alloc1 = s1->flags & block::BlockStatus::Allocated;
            bool alloc2 = s2->flags & block::BlockStatus::Allocated;
            uint64_t chunk = std::min({s1->bytes, s2->bytes, total - offset});
            if (m_args.strict && (s1->flags & mask) != (s2->flags & mask)) {
                qprintf(m_args.common.quiet, "Strict mode: Offset %" PRIu64 " block status mismatch!\n", offset);
                co_return 1;
            }
            bool zero1 = s1->flags & block::BlockStatus::Zero, zero2 = s2->flags & block::BlockStatus::Zero;
            if (zero1 && zero2) {
                // Both read as zeroes.
            } else if (alloc1 == alloc2) {
                if (alloc1) {
                    chunk = std::min(chunk, k_io_buf_bytes);
                    if (int r = co_await read(n1, offset, chunk, m_buf1.data(), 0))
                        co_return r;
                    if (int r = co_await read(n2, offset, chunk, m_buf2.data(), 1))
                        co_return r;
                    uint64_t pnum;
                    bool differ = compare_buffers(m_buf1.data(), m_buf2.data(), chunk, &pnum);
                    if (differ || pnum != chunk) {
                        qprintf(m_args.common.quiet, "Content mismatch at offset %" PRIu64 "!\n", offset + (differ ? 0 : pnum));
                        co_return 1;
                    }
                }
            } else {
                chunk = std::min(chunk, k_io_buf_bytes);
                int which = alloc1 ? 0 : 1;
                if (int r = co_await check_empty(which == 0 ? n1 : n2, offset, chunk, which))
                    co_return r;
            }
            offset += chunk;
            advance(chunk);
        }
        if (size1 != size2) {
            qprintf(m_args.common.quiet, "Warning: Image size mismatch!\n");
            int which = size1 > size2 ? 0 : 1;
            block::BlockNode& over = which == 0 ? n1 : n2;
            while (offset < progress_base) {
                auto s = co_await over.block_status_above(offset, progress_base - offset);
                if (!s) {
                    report_error("Sector allocation test failed for " + m_args.filename[which]);
                    co_return 3;
                }
                uint64_t chunk = std::min(s->bytes, progress_base - offset);
                if ((s->flags & block::BlockStatus::Allocated) && !(s->flags & block::BlockStatus::Zero)) {
                    chunk = std::min(chunk, k_io_buf_bytes);
                    if (int r = co_await check_empty(over, offset, chunk, which))
                        co_return r;
                }
                offset += chunk;
                advance(chunk);
            }
        }
        progress.end();
        qprintf(m_args.common.quiet, "Images are identical.\n");
        co_return 0;
    }

private:
    Task<int> read(block::BlockNode& node, uint64_t offset, uint64_t bytes, uint8_t* buf, int which)
    {
        auto r = co_await node.preadv(offset, block::QIov(buf, bytes));
        if (!r) {
            report_error("Error while reading offset " + std::to_string(offset) + " of " + m_args.filename[which]
                         + ": " + r.error().message());
            co_return 4;
        }
        co_return 0;
    }

    Task<int> check_empty(block::BlockNode& node, uint64_t offset, uint64_t bytes, int which)
    {
        if (int r = co_await read(node, offset, bytes, m_buf1.data(), which))
            co_return r;
        if (auto idx = find_nonzero(m_buf1.data(), bytes)) {
            qprintf(m_args.common.quiet, "Content mismatch at offset %" PRIu64 "!\n", offset + *idx);
            co_return 1;
        }
        co_return 0;
    }

    const CompareArgs& m_args;
    std::vector<uint8_t> m_buf1, m_buf2;
};

Task<int> do_compare(ToolEnv& env, CompareArgs args)
{
    OpenedImage images[2];
    for (int i = 0; i < 2; ++i) {
        ImageRequest req = request_from(args.common, args.filename[i]);
        req.format = args.format[i];
        auto image = co_await open_or_report(env, req);
        if (!image) {
            if (i == 1)
                (void)co_await close_image(images[0]);
            co_return 2;
        }
        images[i] = std::move(*image);
    }
    Comparer comparer(args);
    int ret = co_await comparer.run(*images[0].node, *images[1].node);
    (void)co_await close_image(images[1]);
    (void)co_await close_image(images[0]);
    co_return ret;
}

} // namespace

int img_compare(ToolEnv& env, int argc, char** argv)
{
    CompareArgs args;
    int rc = parse_options(env, argc, argv, ":hf:F:T:pqsU", k_long_standard, {}, args.common, [&](int c) {
        switch (c) {
        case 'F': args.format[1] = optarg; break;
        case 'p': args.progress = true; break;
        case 's': args.strict = true; break;
        }
        return k_parse_continue;
    });
    if (rc != k_parse_continue)
        return rc;
    args.format[0] = args.common.format;
    if (optind != argc - 2)
        return error_exit("Expecting two image file names");
    args.filename[0] = argv[optind];
    args.filename[1] = argv[optind + 1];
    return env.run(do_compare(env, args));
}

} // namespace kiln::tools
