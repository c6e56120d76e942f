// kiln-img dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size]
// [count=blocks] [skip=blocks] if=input of=output
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "block/qiov.h"
#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

struct DdArgs {
    CommonOptions common;
    std::string in, out;
    std::string out_format = "raw";
    uint64_t block_bytes = 512;
    std::optional<uint64_t> count;
    uint64_t skip = 0;
};

Task<int> do_dd(ToolEnv& env, DdArgs args)
{
    auto in = co_await open_or_report(env, request_from(args.common, args.in));
    if (!in)
        co_return 1;
    uint64_t size = in->node->size_bytes();
    if (args.count && *args.count <= UINT64_MAX / args.block_bytes && *args.count * args.block_bytes < size)
        size = *args.count * args.block_bytes;
    uint64_t in_pos = 0;
    if (args.skip) {
        if (args.skip > UINT64_MAX / args.block_bytes || args.skip * args.block_bytes > in->node->size_bytes()) {
            report_error(args.in + ": cannot skip to specified offset");
            in_pos = in->node->size_bytes();
        } else {
            in_pos = args.skip * args.block_bytes;
        }
    }
    uint64_t end = std::min(in->node->size_bytes(), in_pos + size);
    if (args.count)
        end = std::min(end, in_pos + *args.count * args.block_bytes);
    uint64_t out_size = end > in_pos ? end - in_pos : 0;
    int ret = 0;
    auto created = co_await env.ctx().create_image(args.out_format, args.out, out_size, OptionList());
    if (!created) {
        report_error(args.out + ": error while creating output image: " + created.error().message());
        (void)co_await close_image(*in);
        co_return 1;
    }
    ImageRequest oreq;
    oreq.filename = args.out;
    oreq.format = args.out_format;
    oreq.flags.read_write = true;
    oreq.flags.no_backing = true;
    auto out = co_await open_or_report(env, oreq);
    if (!out) {
        (void)co_await close_image(*in);
        co_return 1;
    }
    std::vector<uint8_t> buf(args.block_bytes);
    uint64_t out_pos = 0;
    while (in_pos < end) {
        uint64_t n = std::min(args.block_bytes, end - in_pos);
        auto r = co_await in->node->preadv(in_pos, block::QIov(buf.data(), n));
        if (!r) {
            report_error("error while reading from input image file: " + r.error().message());
            ret = 1;
            break;
        }
        auto w = co_await out->node->pwritev(out_pos, block::QIov(buf.data(), n), block::RequestFlags::None);
        if (!w) {
            report_error("error while writing to output image file: " + w.error().message());
            ret = 1;
            break;
        }
        in_pos += n;
        out_pos += n;
    }
    ret = co_await close_with_status(*out, ret);
    (void)co_await close_image(*in);
    co_return ret;
}

} // namespace

int img_dd(ToolEnv& env, int argc, char** argv)
{
    DdArgs args;
    bool have_in = false, have_out = false;
    int rc = parse_options(env, argc, argv, ":hf:O:U", k_long_standard, {}, args.common, [&](int c) {
        if (c == 'O')
            args.out_format = optarg;
        return k_parse_continue;
    });
    if (rc != k_parse_continue)
        return rc;
    for (int i = optind; i < argc; ++i) {
        std::string arg = argv[i];
        auto eq = arg.find('=');
        if (eq == std::string::npos) {
            report_error("unrecognized operand " + arg);
            return 1;
        }
        std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
        if (key == "bs") {
            auto v = parse_size(value);
            if (!v || *v < 1 || *v > INT_MAX) {
                report_error("Invalid bs specified. Must be between 1 and 2147483647.");
                return 1;
            }
            args.block_bytes = *v;
        } else if (key == "count" || key == "skip") {
            auto v = parse_size(value);
            if (!v) {
                report_error("invalid number: '" + value + "'");
                return 1;
            }
            if (key == "count")
                args.count = *v;
            else
                args.skip = *v;
        } else if (key == "if") {
            args.in = value;
            have_in = true;
        } else if (key == "of") {
            args.out = value;
            have_out = true;
        } else {
            report_error("unrecognized operand " + key);
            return 1;
        }
    }
    if (!have_in || !have_out) {
        report_error("Must specify both input and output files");
        return 1;
    }
    return env.run(do_dd(env, args));
}

} // namespace kiln::tools
