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
#include "tools/img/options.h"

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
    CommonOptions common;
    std::string filename;
    block::CheckFix fix = block::CheckFix::None;
};

Task<int> do_check(ToolEnv& env, CheckArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = args.fix != block::CheckFix::None;
    req.flags.no_backing = true;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
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
        if (args.common.output == OutputFormat::Human)
            qprintf(args.common.quiet,
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
    if (args.common.output == OutputFormat::Human)
        dump_human(*result, args.common.quiet);
    else
        qprintf(args.common.quiet, "%s\n", qjson_pretty(check_to_json(*result, image->filename, image->format)).c_str());
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
    CheckArgs args;
    int rc = parse_options(env, argc, argv, ":hf:r:T:qU", k_long_standard | k_long_format | k_long_output,
                           {{"repair", required_argument, nullptr, 'r'}}, args.common, [&](int c) {
                               if (c != 'r')
                                   return k_parse_continue;
                               if (std::string(optarg) == "leaks")
                                   args.fix = block::CheckFix::Leaks;
                               else if (std::string(optarg) == "all")
                                   args.fix = block::CheckFix::All;
                               else
                                   return error_exit(std::string("Unknown option value for -r (expecting 'leaks' "
                                                                 "or 'all'): ")
                                                     + optarg);
                               return k_parse_continue;
                           });
    if (rc != k_parse_continue)
        return rc;
    auto filename = one_filename(argc, argv, args.common);
    if (!filename)
        return 1;
    args.filename = *filename;
    return env.run(do_check(env, args));
}

} // namespace kiln::tools
