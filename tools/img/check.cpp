// kiln-img check [--object objectdef] [--image-opts] [-q] [-f fmt]
// [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename
//
// Exit codes as qemu-img: 0 clean, 1 check failed, 2 corruptions,
// 3 leaks only, 63 the format cannot be checked.
#include <cinttypes>
#include <cstdio>

#include "tools/common/cli.h"
#include "tools/common/qjson.h"
#include "tools/img/commands.h"

namespace kiln::tools {

namespace {

Json check_to_json(const block::CheckResult& c, const std::string& filename, const std::string& format)
{
    Json j = Json::object();
    j["filename"] = filename;
    j["format"] = format;
    j["check-errors"] = c.check_errors;
    // Optional counters are left out when zero, as qemu-img does.
    auto opt = [&](const char* key, uint64_t v) {
        if (v)
            j[key] = v;
    };
    opt("image-end-offset", c.image_end_offset);
    opt("corruptions", c.corruptions);
    opt("leaks", c.leaks);
    opt("corruptions-fixed", c.corruptions_fixed);
    opt("leaks-fixed", c.leaks_fixed);
    opt("total-clusters", c.total_clusters);
    opt("allocated-clusters", c.allocated_clusters);
    opt("fragmented-clusters", c.fragmented_clusters);
    opt("compressed-clusters", c.compressed_clusters);
    return j;
}

void dump_human(const block::CheckResult& c, bool quiet)
{
    if (!(c.corruptions || c.leaks || c.check_errors)) {
        qprintf(quiet, "No errors were found on the image.\n");
    } else {
        if (c.corruptions)
            qprintf(quiet,
                    "\n%" PRIu64 " errors were found on the image.\n"
                    "Data may be corrupted, or further writes to the image may corrupt it.\n",
                    c.corruptions);
        if (c.leaks)
            qprintf(quiet,
                    "\n%" PRIu64 " leaked clusters were found on the image.\n"
                    "This means waste of disk space, but no harm to data.\n",
                    c.leaks);
        if (c.check_errors)
            qprintf(quiet, "\n%" PRIu64 " internal errors have occurred during the check.\n", c.check_errors);
    }
    if (c.total_clusters != 0 && c.allocated_clusters != 0)
        qprintf(quiet,
                "%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
                c.allocated_clusters, c.total_clusters, double(c.allocated_clusters) * 100.0 / double(c.total_clusters),
                double(c.fragmented_clusters) * 100.0 / double(c.allocated_clusters),
                double(c.compressed_clusters) * 100.0 / double(c.allocated_clusters));
    if (c.image_end_offset)
        qprintf(quiet, "Image end offset: %" PRIu64 "\n", c.image_end_offset);
}

void print_messages(const block::CheckResult& c)
{
    std::fflush(stdout);
    for (auto& m : c.messages)
        std::fprintf(stderr, "%s\n", m.c_str());
}

struct CheckArgs {
    std::string filename;
    std::string format;
    bool image_opts = false;
    bool force_share = false;
    bool quiet = false;
    block::CheckFix fix = block::CheckFix::None;
    block::CacheMode cache = block::CacheMode::Writeback;
    OutputFormat output = OutputFormat::Human;
};

Task<int> do_check(ToolEnv& env, CheckArgs args)
{
    ImageRequest req;
    req.filename = args.filename;
    req.format = args.format;
    req.image_opts = args.image_opts;
    req.flags.read_write = args.fix != block::CheckFix::None;
    req.flags.force_share = args.force_share;
    req.flags.cache = args.cache;
    req.flags.no_backing = true;
    auto image = co_await open_tool_image(env.ctx(), req);
    if (!image) {
        report_error(image.error().message());
        co_return 1;
    }
    block::BlockNode& node = *image->node;
    if (!node.supports_check()) {
        report_error("This image format does not support checks");
        (void)co_await close_image(*image);
        co_return 63;
    }
    auto result = co_await node.check(args.fix);
    if (result)
        print_messages(*result);
    if (result && (result->corruptions_fixed || result->leaks_fixed)) {
        uint64_t leaks_fixed = result->leaks_fixed, corruptions_fixed = result->corruptions_fixed;
        if (args.output == OutputFormat::Human)
            qprintf(args.quiet,
                    "The following inconsistencies were found and repaired:\n\n"
                    "    %" PRIu64 " leaked clusters\n"
                    "    %" PRIu64 " corruptions\n\n"
                    "Double checking the fixed image now...\n",
                    leaks_fixed, corruptions_fixed);
        result = co_await node.check(block::CheckFix::None);
        if (result) {
            print_messages(*result);
            result->leaks_fixed = leaks_fixed;
            result->corruptions_fixed = corruptions_fixed;
        }
    }
    auto closed = co_await close_image(*image);
    if (!result) {
        report_error("Check failed: " + result.error().message());
        co_return 1;
    }
    if (args.output == OutputFormat::Human)
        dump_human(*result, args.quiet);
    else
        qprintf(args.quiet, "%s\n", qjson_pretty(check_to_json(*result, image->filename, image->format)).c_str());
    if (result->check_errors || !closed) {
        report_error(closed ? "Check failed" : "Check failed: " + closed.error().message());
        co_return 1;
    }
    if (result->corruptions)
        co_return 2;
    if (result->leaks)
        co_return 3;
    co_return 0;
}

} // namespace

int img_check(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_OUTPUT = 300 };
    static const option long_options[] = {
        {"help", no_argument, nullptr, 'h'},
        {"format", required_argument, nullptr, 'f'},
        {"repair", required_argument, nullptr, 'r'},
        {"output", required_argument, nullptr, OPT_OUTPUT},
        {"object", required_argument, nullptr, k_opt_object},
        {"image-opts", no_argument, nullptr, k_opt_image_opts},
        {"force-share", no_argument, nullptr, 'U'},
        {nullptr, 0, nullptr, 0},
    };
    CheckArgs args;
    std::string output = "human";
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":hf:r:T:qU", long_options, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case ':':
        case '?': return getopt_failure(c, argv);
        case 'h': return img_help(env);
        case 'f': args.format = optarg; break;
        case 'r':
            if (std::string(optarg) == "leaks")
                args.fix = block::CheckFix::Leaks;
            else if (std::string(optarg) == "all")
                args.fix = block::CheckFix::All;
            else
                return error_exit(std::string("Unknown option value for -r (expecting 'leaks' or 'all'): ") + optarg);
            break;
        case 'T': {
            auto mode = parse_cache_option(optarg);
            if (!mode) {
                report_error(mode.error().message());
                return 1;
            }
            args.cache = *mode;
            break;
        }
        case 'q': args.quiet = true; break;
        case 'U': args.force_share = true; break;
        case OPT_OUTPUT: output = optarg; break;
        case k_opt_image_opts: args.image_opts = true; break;
        case k_opt_object:
            if (!handle_object_option(env, optarg))
                return 1;
            break;
        }
    }
    if (optind != argc - 1)
        return error_exit("Expecting one image file name");
    args.filename = argv[optind];
    auto ofmt = parse_output_format(output);
    if (!ofmt) {
        report_error(ofmt.error().message());
        return 1;
    }
    args.output = *ofmt;
    return env.run(do_check(env, args));
}

} // namespace kiln::tools
