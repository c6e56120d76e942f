// kiln-img convert [--object objectdef] [--image-opts] [--target-image-opts]
// [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache]
// [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]]
// [-o options] [-l snapshot_param] [-S sparse_size] [-r rate_limit]
// [-m num_coroutines] [-W] filename [filename2 [...]] output_filename
#include "tools/img/convert.h"

#include <cstdio>
#include <cstring>

#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/convert_bitmaps.h"
#include "tools/img/create_options.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

constexpr int k_max_coroutines = 16;
constexpr uint64_t k_max_sparse_bytes = 32768 * 512;

struct ConvertArgs {
    std::vector<std::string> sources;
    std::string target;
    std::string out_format;
    std::string options;
    std::string backing;
    std::string backing_format;
    std::string snapshot_id, snapshot_name;
    bool snapshot = false;
    bool snapshot_bare = false;
    CommonOptions common;
    bool target_image_opts = false;
    bool target_is_zero = false;
    bool skip_create = false;
    bool progress = false;
    bool bitmaps = false; // --bitmaps
    bool skip_broken_bitmaps = false;
    block::CacheMode cache = block::CacheMode::Unsafe;
    ConvertSettings settings;
};

Task<int> do_convert(ToolEnv& env, ConvertArgs args)
{
    std::vector<OpenedImage> sources;
    auto close_all = [&]() -> Task<void> {
        for (auto& s : sources)
            (void)co_await close_image(s);
    };
    for (auto& name : args.sources) {
        auto image = co_await open_or_report(env, request_from(args.common, name));
        if (!image) {
            co_await close_all();
            co_return 1;
        }
        sources.push_back(std::move(*image));
    }
    if (args.snapshot) {
        block::BlockNode& node = *sources[0].node;
        Result<void> r = ok();
        if (args.snapshot_bare) {
            // A bare argument is an ID or a name, tried in that order.
            r = co_await node.snapshot_load_tmp(args.snapshot_name, "");
            if (!r)
                r = co_await node.snapshot_load_tmp("", args.snapshot_name);
        } else {
            r = co_await node.snapshot_load_tmp(args.snapshot_id, args.snapshot_name);
        }
        if (!r) {
            report_error("Failed to load snapshot: " + r.error().message());
            co_await close_all();
            co_return 1;
        }
    }
    if (args.bitmaps) {
        if (sources.size() > 1) {
            report_error("Copying bitmaps only possible with single source");
            co_await close_all();
            co_return 1;
        }
        if (!convert_check_bitmaps(*sources[0].node, args.skip_broken_bitmaps)) {
            co_await close_all();
            co_return 1;
        }
    }
    uint64_t total = 0;
    for (auto& s : sources)
        total += s.node->size_bytes();

    OpenedImage target;
    OptionList open_secrets; // the target's key secrets survive creation
    if (!args.skip_create) {
        const block::FormatDriver* driver = env.ctx().find_format(args.out_format);
        if (!driver) {
            report_error("Unknown file format '" + args.out_format + "'");
            co_await close_all();
            co_return 1;
        }
        if (args.settings.compressed && args.out_format != "qcow2") {
            report_error("Compression not supported for this file format");
            co_await close_all();
            co_return 1;
        }
        auto opts = OptionList::parse(args.options);
        Result<void> valid = opts ? validate_create_options(*driver, *opts) : Result<void>(opts.error());
        if (!valid) {
            report_error(valid.error().message());
            co_await close_all();
            co_return 1;
        }
        if (!args.backing.empty())
            opts->set("backing_file", args.backing);
        if (!args.backing_format.empty())
            opts->set("backing_fmt", args.backing_format);
        if (opts->get("backing_file"))
            args.settings.target_has_backing = true;
        opts->remove("size");
        for (const char* key : {"key-secret", "encrypt.key-secret"})
            if (auto id = opts->get(key))
                open_secrets.set(key, *id);
        auto created = co_await env.ctx().create_image(args.out_format, args.target, total, *opts);
        if (!created) {
            report_error(
                args.target + ": error while converting " + args.out_format + ": " + created.error().message());
            co_await close_all();
            co_return 1;
        }
    }
    ImageRequest treq;
    treq.filename = args.target;
    treq.format = args.skip_create && !args.target_image_opts ? args.out_format : args.out_format;
    treq.image_opts = args.target_image_opts;
    treq.flags.read_write = true;
    treq.flags.no_backing = true;
    treq.flags.cache = args.cache;
    treq.options = open_secrets;
    auto opened = co_await open_or_report(env, treq);
    if (!opened) {
        co_await close_all();
        co_return 1;
    }
    target = std::move(*opened);
    if (args.skip_create) {
        // An existing target copies the whole source (as qemu-img: only -B
        // copies the top layer alone); if it has a backing file, its
        // unwritten ranges do not read as zeroes.
        bool target_backed = !target.node->backing_file_name().empty();
        args.settings.target_zero_init = args.target_is_zero && !target_backed;
        if (target.node->size_bytes() < total) {
            report_error("Error: target image is smaller than the source (" + std::to_string(target.node->size_bytes())
                + " < " + std::to_string(total) + " bytes)");
            (void)co_await close_image(target);
            co_await close_all();
            co_return 1;
        }
    } else {
        args.settings.target_zero_init = !args.settings.target_has_backing;
    }
    if (args.settings.compressed && !target.node->supports_compressed_writes()) {
        report_error("Compression not supported for this file format");
        (void)co_await close_image(target);
        co_await close_all();
        co_return 1;
    }
    if (args.bitmaps && !convert_target_takes_bitmaps(*target.node)) {
        (void)co_await close_image(target);
        co_await close_all();
        co_return 1;
    }
    std::vector<block::BlockNode*> nodes;
    for (auto& s : sources)
        nodes.push_back(s.node.get());
    Progress progress(args.progress && !args.common.quiet, 1.0);
    ConvertEngine engine(env.loop(), nodes, *target.node, args.settings, progress);
    auto result = co_await engine.run();
    if (result)
        result = co_await target.node->flush();
    bool bitmaps_ok = true;
    if (result && args.bitmaps)
        bitmaps_ok = co_await convert_copy_bitmaps(*sources[0].node, *target.node, args.skip_broken_bitmaps);
    auto closed = co_await close_image(target);
    co_await close_all();
    if (result)
        progress.end();
    if (!result) {
        report_error(result.error().message());
        co_return 1;
    }
    if (!closed) {
        report_error(closed.error().message());
        co_return 1;
    }
    co_return bitmaps_ok ? 0 : 1;
}

bool has_help_option(const std::string& options)
{
    auto parsed = OptionList::parse(options);
    if (!parsed)
        return false;
    for (auto& [k, v] : parsed->entries())
        if ((k == "help" || k == "?") && v == "on")
            return true;
    return false;
}

} // namespace

namespace {

enum { OPT_TARGET_IMAGE_OPTS = 300, OPT_SALVAGE, OPT_TARGET_IS_ZERO, OPT_BITMAPS, OPT_SKIP_BROKEN_BITMAPS };

// convert's own options; returns k_parse_continue or an exit code.
int convert_option(int c, ConvertArgs& args, bool& out_format_given)
{
    switch (c) {
    case 'O':
        args.out_format = optarg;
        out_format_given = true;
        break;
    case 'B':
        args.backing = optarg;
        break;
    case 'F':
        args.backing_format = optarg;
        break;
    case 'C':
        break; // copy offloading: Kiln always copies through buffers
    case 'c':
        args.settings.compressed = true;
        break;
    case 'o':
        append_options(args.options, optarg);
        break;
    case 'l': {
        std::string arg = optarg;
        args.snapshot = true;
        if (arg.rfind("snapshot.", 0) == 0) {
            auto opts = OptionList::parse(arg);
            if (!opts) {
                report_error("Failed in parsing snapshot param '" + arg + "'");
                return 1;
            }
            args.snapshot_id = opts->get("snapshot.id").value_or("");
            args.snapshot_name = opts->get("snapshot.name").value_or("");
        } else {
            args.snapshot_name = arg;
            args.snapshot_bare = true;
        }
        break;
    }
    case 'S': {
        auto v = parse_size(optarg);
        if (!v || *v % 512 || *v > k_max_sparse_bytes) {
            report_error("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up "
                         "to 16777216. Select 0 to disable sparse detection (fully allocates output).");
            return 1;
        }
        args.settings.min_sparse_bytes = *v;
        break;
    }
    case 'p':
        args.progress = true;
        break;
    case 't': {
        auto mode = parse_cache_option(optarg);
        if (!mode) {
            report_error(mode.error().message());
            return 1;
        }
        args.cache = *mode;
        break;
    }
    case 'n':
        args.skip_create = true;
        break;
    case 'm': {
        char* end = nullptr;
        long n = std::strtol(optarg, &end, 10);
        if (!*optarg || *end || n < 1 || n > k_max_coroutines) {
            report_error("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
            return 1;
        }
        args.settings.coroutines = int(n);
        break;
    }
    case 'W':
        args.settings.out_of_order = true;
        break;
    case 'r':
        break; // rate limit: accepted, not applied
    case OPT_TARGET_IMAGE_OPTS:
        args.target_image_opts = true;
        break;
    case OPT_TARGET_IS_ZERO:
        args.target_is_zero = true;
        break;
    case OPT_BITMAPS:
        args.bitmaps = true;
        break;
    case OPT_SKIP_BROKEN_BITMAPS:
        args.skip_broken_bitmaps = true;
        break;
    case OPT_SALVAGE:
        break;
    }
    return k_parse_continue;
}

} // namespace

int img_convert(ToolEnv& env, int argc, char** argv)
{
    ConvertArgs args;
    bool out_format_given = false;
    int rc = parse_options(env, argc, argv, ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:", k_long_standard,
        { { "target-image-opts", no_argument, nullptr, OPT_TARGET_IMAGE_OPTS },
            { "salvage", no_argument, nullptr, OPT_SALVAGE },
            { "target-is-zero", no_argument, nullptr, OPT_TARGET_IS_ZERO },
            { "bitmaps", no_argument, nullptr, OPT_BITMAPS },
            { "skip-broken-bitmaps", no_argument, nullptr, OPT_SKIP_BROKEN_BITMAPS } },
        args.common, [&](int c) { return convert_option(c, args, out_format_given); });
    if (rc != k_parse_continue)
        return rc;
    if (!out_format_given && !args.target_image_opts)
        args.out_format = "raw";
    if (args.skip_broken_bitmaps && !args.bitmaps) {
        report_error("Use of --skip-broken-bitmaps requires --bitmaps");
        return 1;
    }
    if (args.target_image_opts && !args.skip_create) {
        report_error("--target-image-opts requires use of -n flag");
        return 1;
    }
    if (args.target_is_zero && !args.skip_create) {
        report_error("--target-is-zero requires use of -n flag");
        return 1;
    }
    int src_num = argc - optind - 1;
    if (src_num >= 1)
        args.target = argv[argc - 1];
    if (!args.options.empty() && has_help_option(args.options)) {
        const block::FormatDriver* driver = env.ctx().find_format(args.out_format);
        if (!driver) {
            report_error("Unknown file format '" + args.out_format + "'");
            return 1;
        }
        std::fputs(create_options_help(*driver, !args.target.empty()).c_str(), stdout);
        return 0;
    }
    if (src_num < 1) {
        report_error("Must specify image file name");
        return 1;
    }
    if (src_num > 1 && args.snapshot) {
        report_error("No support for concatenating multiple snapshot");
        return 1;
    }
    if (args.skip_create && !args.options.empty()) {
        report_error("-o has no effect when skipping image creation");
        return 1;
    }
    if (args.skip_create && !args.backing.empty()) {
        report_error("Use of backing file requires explicit image creation");
        return 1;
    }
    if (!args.backing.empty() || args.options.find("backing_file") != std::string::npos) {
        if (args.backing_format.empty() && args.options.find("backing_fmt") == std::string::npos) {
            report_error("Use of backing file requires explicit backing format");
            return 1;
        }
    }
    for (int i = optind; i < argc - 1; ++i)
        args.sources.push_back(argv[i]);
    return env.run(do_convert(env, args));
}

} // namespace kiln::tools
