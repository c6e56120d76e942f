// kiln-img bitmap (--merge SOURCE | --add | --remove | --clear | --enable |
// --disable)... [-b source_file [-F source_fmt]] [-g granularity]
// [--object objectdef] [--image-opts | -f fmt] filename bitmap
//
// The actions run in command-line order on the persistent bitmap `bitmap`;
// the first that fails stops the run (exit 1) but what the earlier ones did
// is kept, as qemu-img keeps it (its bitmaps are stored when the image
// closes either way).
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "block/dirty_bitmap.h"
#include "block/node.h"
#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

enum class BitmapAction { Add, Remove, Clear, Enable, Disable, Merge };

struct Action {
    BitmapAction kind;
    std::string source; // --merge
};

struct BitmapArgs {
    CommonOptions common;
    std::vector<Action> actions;
    std::string source_file; // -b
    std::string source_format; // -F
    int64_t granularity = 0; // -g; 0 = not given (qemu-img's test)
    std::string filename;
    std::string bitmap;
};

const char* action_name(BitmapAction a)
{
    switch (a) {
    case BitmapAction::Add: return "add";
    case BitmapAction::Remove: return "remove";
    case BitmapAction::Clear: return "clear";
    case BitmapAction::Enable: return "enable";
    case BitmapAction::Disable: return "disable";
    case BitmapAction::Merge: return "merge";
    }
    return "";
}

// qemu-img's cvtnum("granularity", ...): sizes with k..E suffixes or hex.
std::optional<int64_t> parse_granularity(const std::string& text)
{
    auto junk = [] {
        report_error("Invalid granularity specified. You may use k, M, G, T, P or E suffixes for");
        report_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return std::nullopt;
    };
    auto range = [] {
        report_error("Invalid granularity specified. Must be between 0 and 9223372036854775807.");
        return std::nullopt;
    };
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        char* end = nullptr;
        errno = 0;
        unsigned long long v = std::strtoull(text.c_str() + 2, &end, 16);
        if (*end || end == text.c_str() + 2)
            return junk();
        if (errno == ERANGE || v > uint64_t(INT64_MAX))
            return range();
        return int64_t(v);
    }
    // A unit letter may not be followed by anything (no "kB").
    size_t digits = text.find_first_not_of("0123456789.");
    if (digits != std::string::npos && text.size() - digits > 1)
        return junk();
    auto v = parse_size(text);
    if (!v)
        return v.error().message().find("too large") != std::string::npos ? range() : junk();
    return int64_t(*v);
}

Error unsupported_node(block::BlockNode& node)
{
    // QEMU's anonymous node name; the number carries no meaning.
    uint64_t n = 10 + (reinterpret_cast<uintptr_t>(&node) >> 6) % 90;
    return Error::not_supported("Can't store persistent bitmaps to #block1" + std::to_string(n)
                                + ": Operation not supported");
}

// QEMU's block-dirty-bitmap-merge: the target must be there and usable,
// then the source bitmap (in the same image or in -b's).
Task<Result<void>> merge_bitmap(block::BlockNode& node, const std::string& target, block::BlockNode& source_node,
                                const std::string& source)
{
    block::PersistentBitmaps* dst = node.persistent_bitmaps();
    if (!dst)
        co_return Error::not_found("Dirty bitmap '" + target + "' not found");
    bool found = false;
    for (const auto& info : dst->bitmaps()) {
        if (info.name != target)
            continue;
        found = true;
        if (info.inconsistent)
            co_return Error::invalid("Bitmap '" + target
                                     + "' is inconsistent and cannot be used\n"
                                       "Try block-dirty-bitmap-remove to delete this bitmap from disk");
    }
    if (!found)
        co_return Error::not_found("Dirty bitmap '" + target + "' not found");
    block::PersistentBitmaps* src = source_node.persistent_bitmaps();
    if (!src)
        co_return Error::not_found("Dirty bitmap '" + source + "' not found");
    block::DirtyBits bits = CO_TRY(co_await src->bitmap_bits(source));
    co_return dst->bitmap_merge(target, bits);
}

Task<Result<void>> run_action(block::BlockNode& node, block::BlockNode& source_node, const BitmapArgs& args,
                              const Action& action)
{
    const std::string& name = args.bitmap;
    block::PersistentBitmaps* bitmaps = node.persistent_bitmaps();
    switch (action.kind) {
    case BitmapAction::Add: {
        if (name.empty())
            co_return Error::invalid("Bitmap name cannot be empty");
        std::optional<uint64_t> granularity;
        if (args.granularity) {
            // qemu-img hands the value on as a 32-bit number.
            uint32_t g = uint32_t(uint64_t(args.granularity));
            if (g < 512 || (g & (g - 1)))
                co_return Error::invalid("Granularity must be power of 2 and at least 512");
            granularity = g;
        }
        if (!bitmaps)
            co_return unsupported_node(node);
        co_return bitmaps->bitmap_add(name, granularity, false);
    }
    case BitmapAction::Remove:
        if (!bitmaps)
            co_return Error::not_found("Dirty bitmap '" + name + "' not found");
        co_return bitmaps->bitmap_remove(name);
    case BitmapAction::Clear:
        if (!bitmaps)
            co_return Error::not_found("Dirty bitmap '" + name + "' not found");
        co_return bitmaps->bitmap_clear(name);
    case BitmapAction::Enable:
    case BitmapAction::Disable:
        if (!bitmaps)
            co_return Error::not_found("Dirty bitmap '" + name + "' not found");
        co_return bitmaps->bitmap_enable(name, action.kind == BitmapAction::Enable);
    case BitmapAction::Merge:
        co_return co_await merge_bitmap(node, name, source_node, action.source);
    }
    co_return ok();
}

Task<int> do_bitmap(ToolEnv& env, BitmapArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = true;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    std::optional<OpenedImage> source;
    if (!args.source_file.empty()) {
        ImageRequest src_req;
        src_req.filename = args.source_file;
        src_req.format = args.source_format;
        source = co_await open_or_report(env, src_req);
        if (!source) {
            (void)co_await close_image(*image);
            co_return 1;
        }
    }
    block::BlockNode& source_node = source ? *source->node : *image->node;
    int ret = 0;
    for (const Action& action : args.actions) {
        auto r = co_await run_action(*image->node, source_node, args, action);
        if (!r) {
            report_error(std::string("Operation ") + action_name(action.kind) + " on bitmap " + args.bitmap
                         + " failed: " + r.error().message());
            ret = 1;
            break;
        }
    }
    if (source)
        (void)co_await close_image(*source);
    co_return co_await close_with_status(*image, ret);
}

} // namespace

int img_bitmap(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_ADD = 300, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE, OPT_DISABLE, OPT_MERGE };
    BitmapArgs args;
    bool add = false, merge = false;
    int rc = parse_options(env, argc, argv, ":b:f:F:g:h", k_long_object | k_long_image_opts,
        { { "add", no_argument, nullptr, OPT_ADD }, { "remove", no_argument, nullptr, OPT_REMOVE },
            { "clear", no_argument, nullptr, OPT_CLEAR }, { "enable", no_argument, nullptr, OPT_ENABLE },
            { "disable", no_argument, nullptr, OPT_DISABLE }, { "merge", required_argument, nullptr, OPT_MERGE },
            { "granularity", required_argument, nullptr, 'g' },
            { "source-file", required_argument, nullptr, 'b' },
            { "source-format", required_argument, nullptr, 'F' } },
        args.common, [&](int c) {
            switch (c) {
            case 'b': args.source_file = optarg; break;
            case 'F': args.source_format = optarg; break;
            case 'g': {
                auto g = parse_granularity(optarg);
                if (!g)
                    return 1;
                args.granularity = *g;
                break;
            }
            case OPT_ADD: args.actions.push_back({ BitmapAction::Add, {} }); add = true; break;
            case OPT_REMOVE: args.actions.push_back({ BitmapAction::Remove, {} }); break;
            case OPT_CLEAR: args.actions.push_back({ BitmapAction::Clear, {} }); break;
            case OPT_ENABLE: args.actions.push_back({ BitmapAction::Enable, {} }); break;
            case OPT_DISABLE: args.actions.push_back({ BitmapAction::Disable, {} }); break;
            case OPT_MERGE: args.actions.push_back({ BitmapAction::Merge, optarg }); merge = true; break;
            default: break;
            }
            return k_parse_continue;
        });
    if (rc != k_parse_continue)
        return rc;
    if (args.actions.empty()) {
        report_error("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        return 1;
    }
    if (args.granularity && !add) {
        report_error("granularity only supported with --add");
        return 1;
    }
    if (!args.source_format.empty() && args.source_file.empty()) {
        report_error("-F only supported with -b");
        return 1;
    }
    if (!args.source_file.empty() && !merge) {
        report_error("Merge bitmap source file only supported with --merge");
        return 1;
    }
    if (optind != argc - 2) {
        report_error("Expecting filename and bitmap name");
        return 1;
    }
    args.filename = argv[optind];
    args.bitmap = argv[optind + 1];
    return env.run(do_bitmap(env, args));
}

} // namespace kiln::tools
