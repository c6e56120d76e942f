// kiln-img rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt]
// [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt]
// filename
//
// Safe mode (default): every range the image does not allocate itself is
// compared between the old backing chain and the new backing file (zeroes
// past its end, or everywhere with -b ""), and where they differ the old
// content is written into the image, so the guest sees the same disk
// afterwards. Then the header names the new backing file. -u only
// rewrites the name.
#include <cstdio>
#include <cstring>

#include "block/context.h"
#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/common/progress.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

struct RebaseArgs {
    CommonOptions common;
    std::string filename;
    std::optional<std::string> backing;
    std::string backing_format;
    bool unsafe = false;
    bool progress = false;
};

constexpr uint64_t k_chunk_bytes = 1 << 20;

// Writes only the runs of 512-byte sectors whose contents differ, as
// qemu-img does, so clusters that read the same through the new backing
// file stay unallocated in the overlay.
Task<Result<void>> write_differing_sectors(
    block::BlockNode& top, uint64_t offset, std::vector<uint8_t>& old_buf, const std::vector<uint8_t>& new_buf)
{
    constexpr uint64_t k_sector = 512;
    const uint64_t n = old_buf.size();
    auto differs = [&](uint64_t pos) {
        uint64_t len = std::min(k_sector, n - pos);
        return std::memcmp(old_buf.data() + pos, new_buf.data() + pos, len) != 0;
    };
    uint64_t pos = 0;
    while (pos < n) {
        const bool run_differs = differs(pos);
        uint64_t end = std::min(pos + k_sector, n);
        while (end < n && differs(end) == run_differs)
            end = std::min(end + k_sector, n);
        if (run_differs)
            CO_TRY(co_await top.pwritev(offset + pos, block::QIov(old_buf.data() + pos, end - pos), block::RequestFlags::None));
        pos = end;
    }
    co_return ok();
}

Task<Result<void>> copy_differences(block::BlockNode& top, block::BlockNode* new_base, Progress& progress)
{
    uint64_t size = top.size_bytes();
    std::vector<uint8_t> old_buf, new_buf;
    uint64_t offset = 0;
    while (offset < size) {
        uint64_t want = std::min(k_chunk_bytes, size - offset);
        block::BlockStatus st = CO_TRY(co_await top.block_status(offset, want));
        uint64_t n = std::max<uint64_t>(std::min(st.bytes, want), 1);
        if (!(st.flags & block::BlockStatus::Allocated)) {
            old_buf.resize(n);
            new_buf.assign(n, 0);
            CO_TRY(co_await top.preadv(offset, block::QIov(old_buf.data(), n)));
            if (new_base && offset < new_base->size_bytes()) {
                uint64_t avail = std::min(n, new_base->size_bytes() - offset);
                CO_TRY(co_await new_base->preadv(offset, block::QIov(new_buf.data(), avail)));
            }
            CO_TRY(co_await write_differing_sectors(top, offset, old_buf, new_buf));
        }
        offset += n;
        progress.set(100.0 * double(offset) / double(size));
    }
    co_return ok();
}

Task<int> do_rebase(ToolEnv& env, RebaseArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = true;
    req.flags.no_backing = args.unsafe;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    block::BlockNode& top = *image->node;
    Progress progress(args.progress && !args.common.quiet, 1.0);
    progress.start();
    int ret = 0;
    std::optional<OpenedImage> new_base;
    if (!args.unsafe && !args.backing->empty()) {
        ImageRequest b;
        b.filename = full_backing_filename(image->filename, *args.backing);
        b.format = args.backing_format;
        b.flags.force_share = true;
        b.wrap_errors = false;
        auto opened = co_await open_tool_image(env.ctx(), b);
        if (!opened) {
            report_error("Could not open new backing file '" + b.filename + "': " + opened.error().message());
            co_return co_await close_with_status(*image, 1);
        }
        new_base = std::move(opened).value();
        if (args.backing_format.empty())
            args.backing_format = new_base->format; // as probed, so it is recorded
    }
    if (!args.unsafe) {
        auto r = co_await copy_differences(top, new_base ? new_base->node.get() : nullptr, progress);
        if (!r) {
            report_error("Error while rebasing: " + r.error().message());
            ret = 1;
        }
    }
    if (new_base)
        (void)co_await close_image(*new_base);
    if (ret == 0) {
        OptionList opts;
        opts.set("backing_file", *args.backing);
        opts.set("backing_fmt", args.backing->empty() ? "" : args.backing_format);
        auto r = co_await top.amend(opts, block::AmendFlags{});
        if (!r) {
            report_error("Could not change the backing file to '" + *args.backing + "': " + r.error().message());
            ret = 1;
        }
    }
    progress.end();
    co_return co_await close_with_status(*image, ret);
}

} // namespace

int img_rebase(ToolEnv& env, int argc, char** argv)
{
    RebaseArgs args;
    int rc = parse_options(env, argc, argv, ":hf:F:b:upt:T:qU", k_long_standard, {}, args.common, [&](int c) {
        switch (c) {
        case 'F':
            args.backing_format = optarg;
            break;
        case 'b':
            args.backing = std::string(optarg);
            break;
        case 'u':
            args.unsafe = true;
            break;
        case 'p':
            args.progress = true;
            break;
        }
        return k_parse_continue;
    });
    if (rc != k_parse_continue)
        return rc;
    auto filename = one_filename(argc, argv, args.common);
    if (!filename)
        return 1;
    args.filename = *filename;
    if (!args.backing) {
        report_error("Must specify backing file (-b) or use unsafe mode (-u)");
        std::fprintf(stderr, "Try 'kiln-img --help' for more information\n");
        return 1;
    }
    return env.run(do_rebase(env, args));
}

} // namespace kiln::tools
