// kiln-img commit [--object objectdef] [--image-opts] [-q] [-f fmt]
// [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename
//
// Copies what the image and every layer above `base` (default: its
// backing file) allocate into `base`, topmost layer first, grows `base`
// if it is smaller, then empties the image unless -d (or -b, which
// implies -d, as in qemu-img).
#include <cstdio>

#include "block/context.h"
#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/common/progress.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

struct CommitArgs {
    CommonOptions common;
    std::string filename;
    std::string base;
    bool drop = false;
    bool progress = false;
};

constexpr uint64_t k_chunk_bytes = 1 << 20;

Task<Result<OpenedImage>> open_layer(ToolEnv& env, const std::string& name, const std::string& format, bool rw)
{
    ImageRequest r;
    r.filename = name;
    r.format = format;
    r.flags.read_write = rw;
    r.flags.no_backing = true;
    co_return co_await open_tool_image(env.ctx(), r);
}

// Copies [0, size) from the topmost layer allocating each range into base.
Task<Result<void>> copy_down(std::vector<block::BlockNode*> layers, block::BlockNode& base, Progress& progress)
{
    uint64_t size = layers.front()->size_bytes();
    std::vector<uint8_t> buf;
    for (uint64_t off = 0; off < size;) {
        uint64_t run = std::min(k_chunk_bytes, size - off);
        block::BlockNode* source = nullptr;
        bool zero = false;
        for (block::BlockNode* layer : layers) {
            if (off >= layer->size_bytes())
                continue;
            block::BlockStatus st = CO_TRY(co_await layer->block_status(off, run));
            run = std::max<uint64_t>(std::min(run, st.bytes), 1);
            if (st.flags & block::BlockStatus::Allocated) {
                source = layer;
                zero = st.flags & block::BlockStatus::Zero;
                break;
            }
        }
        if (source && zero) {
            CO_TRY(co_await base.pwrite_zeroes(off, run, block::RequestFlags::MayUnmap));
        } else if (source) {
            buf.resize(run);
            CO_TRY(co_await source->preadv(off, block::QIov(buf.data(), run)));
            CO_TRY(co_await base.pwritev(off, block::QIov(buf.data(), run), block::RequestFlags::None));
        }
        off += run;
        progress.set(100.0 * double(off) / double(size));
    }
    co_return co_await base.flush();
}

Task<int> do_commit(ToolEnv& env, CommitArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = true;
    req.flags.no_backing = true;
    auto top = co_await open_or_report(env, req);
    if (!top)
        co_return 1;
    // The chain below the image, each layer opened on its own.
    std::vector<OpenedImage> layers;
    std::string name = top->node->backing_file_name(), fmt = top->node->backing_format_name();
    std::string below = top->filename;
    if (name.empty()) {
        report_error("Image does not have a backing file");
        co_return co_await close_with_status(*top, 1);
    }
    std::optional<OpenedImage> base;
    std::string base_path = args.base.empty() ? "" : full_backing_filename(top->filename, args.base);
    int ret = 0;
    while (!name.empty()) {
        std::string path = full_backing_filename(below, name);
        bool is_base = args.base.empty() || path == base_path || name == args.base;
        auto opened = co_await open_layer(env, path, fmt, is_base);
        if (!opened) {
            report_error(opened.error().message());
            ret = 1;
            break;
        }
        if (is_base) {
            base = std::move(opened).value();
            break;
        }
        below = path;
        name = opened->node->backing_file_name();
        fmt = opened->node->backing_format_name();
        layers.push_back(std::move(opened).value());
    }
    if (ret == 0 && !base) {
        report_error("Did not find '" + args.base + "' in the backing chain of '" + args.filename + "'");
        ret = 1;
    }
    Progress progress(args.progress && !args.common.quiet, 1.0);
    if (ret == 0) {
        progress.start();
        std::vector<block::BlockNode*> sources{top->node.get()};
        for (auto& l : layers)
            sources.push_back(l.node.get());
        Result<void> r = ok();
        if (base->node->size_bytes() < top->node->size_bytes())
            r = co_await base->node->truncate(top->node->size_bytes(), block::PreallocMode::Off, false);
        if (r)
            r = co_await copy_down(sources, *base->node, progress);
        if (r && !args.drop)
            r = co_await top->node->make_empty();
        progress.end();
        if (!r) {
            report_error(r.error().message());
            ret = 1;
        }
    }
    for (auto& l : layers)
        (void)co_await close_image(l);
    if (base)
        (void)co_await close_image(*base);
    ret = co_await close_with_status(*top, ret);
    if (ret == 0 && !args.common.quiet)
        std::printf("Image committed.\n");
    co_return ret;
}

} // namespace

int img_commit(ToolEnv& env, int argc, char** argv)
{
    CommitArgs args;
    int rc = parse_options(env, argc, argv, ":hf:t:b:dpqr:", k_long_object | k_long_image_opts, {}, args.common,
                           [&](int c) {
                               switch (c) {
                               case 'b':
                                   args.base = optarg;
                                   args.drop = true; // -b implies -d
                                   break;
                               case 'd':
                                   args.drop = true;
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
    return env.run(do_commit(env, args));
}

} // namespace kiln::tools
