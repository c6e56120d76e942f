// kiln-img resize [--object objectdef] [--image-opts] [-f fmt]
// [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size
#include <cstdio>

#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

struct ResizeArgs {
    CommonOptions common;
    std::string filename;
    bool shrink = false;
    block::PreallocMode prealloc = block::PreallocMode::Off;
    int sign = 0; // -1, 0 (absolute), +1
    uint64_t size = 0;
};

Task<int> do_resize(ToolEnv& env, ResizeArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = true;
    req.flags.no_backing = true;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    block::BlockNode& node = *image->node;
    int64_t current = int64_t(node.size_bytes());
    int64_t total;
    if (args.sign == 0)
        total = int64_t(args.size);
    else if (args.sign > 0)
        total = current + int64_t(args.size);
    else
        total = current - int64_t(args.size);
    int ret = 0;
    if (total <= 0) {
        report_error("New image size must be positive");
        ret = 1;
    } else if (total <= current && args.prealloc != block::PreallocMode::Off) {
        report_error("Preallocation can only be used for growing images");
        ret = 1;
    } else if (total < current && !args.shrink) {
        report_error("Use the --shrink option to perform a shrink operation.");
        report_warning("Shrinking an image will delete all data beyond the shrunken image's end. Before performing "
                       "such an operation, make sure there is no important data there.");
        ret = 1;
    } else {
        auto r = co_await node.truncate(uint64_t(total), args.prealloc, args.shrink);
        if (!r) {
            report_error(r.error().message());
            ret = 1;
        }
    }
    ret = co_await close_with_status(*image, ret);
    if (ret == 0)
        qprintf(args.common.quiet, "Image resized.\n");
    co_return ret;
}

} // namespace

int img_resize(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_PREALLOC = 300, OPT_SHRINK };
    // The size is taken off the end first so "-1G" is not read as options.
    if (argc < 3)
        return error_exit("Not enough arguments");
    std::string size_text = argv[--argc];
    ResizeArgs args;
    int rc = parse_options(env, argc, argv, ":f:hq", k_long_object | k_long_image_opts,
                           {{"preallocation", required_argument, nullptr, OPT_PREALLOC},
                            {"shrink", no_argument, nullptr, OPT_SHRINK}},
                           args.common, [&](int c) {
                               if (c == OPT_SHRINK) {
                                   args.shrink = true;
                               } else if (c == OPT_PREALLOC) {
                                   auto mode = block::parse_prealloc(optarg);
                                   if (!mode) {
                                       report_error(std::string("Invalid preallocation mode '") + optarg + "'");
                                       return 1;
                                   }
                                   args.prealloc = *mode;
                               }
                               return k_parse_continue;
                           });
    if (rc != k_parse_continue)
        return rc;
    if (optind != argc - 1)
        return error_exit("Expecting image file name and size");
    args.filename = argv[optind];
    std::string digits = size_text;
    if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
        args.sign = digits[0] == '+' ? 1 : -1;
        digits = digits.substr(1);
    }
    auto size = digits.empty() || digits[0] == '-' || digits[0] == '+' ? Result<uint64_t>(Error::invalid(""))
                                                                        : parse_size(digits);
    if (!size) {
        report_error("Parameter 'size' expects a non-negative number below 2^64");
        std::fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                             "and exabytes, respectively.\n");
        return 1;
    }
    args.size = *size;
    return env.run(do_resize(env, args));
}

} // namespace kiln::tools
