// kiln-img info [--object objectdef] [--image-opts] [-f fmt]
// [--output=ofmt] [--backing-chain] [-U] filename
#include <cstdio>
#include <set>

#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/img/commands.h"

namespace kiln::tools {

namespace {

struct InfoArgs {
    std::string filename;
    std::string format;
    bool image_opts = false;
    bool chain = false;
    bool force_share = false;
};

Task<Result<Json>> collect_chain(ToolEnv& env, InfoArgs args)
{
    Json list = Json::array();
    std::set<std::string> seen;
    std::string filename = args.filename;
    std::string format = args.format;
    bool image_opts = args.image_opts;
    for (;;) {
        if (!seen.insert(filename).second)
            co_return Error::invalid("Backing file '" + filename + "' creates an infinite loop.");
        ImageRequest req;
        req.filename = filename;
        req.format = format;
        req.image_opts = image_opts;
        req.flags.no_backing = true;
        req.flags.no_io = true;
        req.flags.force_share = args.force_share;
        auto image = CO_TRY(co_await open_tool_image(env.ctx(), req));
        Json info = collect_image_info(*image.node, image.filename, image.format);
        CO_TRY(co_await close_image(image));
        list.push_back(info);
        if (!args.chain || !info.contains("full-backing-filename"))
            break;
        filename = info["full-backing-filename"].get<std::string>();
        format = info.value("backing-filename-format", std::string());
        image_opts = false;
    }
    co_return list;
}

} // namespace

int img_info(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_OUTPUT = 300, OPT_CHAIN };
    static const option long_options[] = {
        {"help", no_argument, nullptr, 'h'},
        {"format", required_argument, nullptr, 'f'},
        {"output", required_argument, nullptr, OPT_OUTPUT},
        {"backing-chain", no_argument, nullptr, OPT_CHAIN},
        {"object", required_argument, nullptr, k_opt_object},
        {"image-opts", no_argument, nullptr, k_opt_image_opts},
        {"force-share", no_argument, nullptr, 'U'},
        {nullptr, 0, nullptr, 0},
    };
    InfoArgs args;
    std::string output = "human";
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":f:hU", long_options, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case ':':
        case '?': return getopt_failure(c, argv);
        case 'h': return img_help(env);
        case 'f': args.format = optarg; break;
        case 'U': args.force_share = true; break;
        case OPT_OUTPUT: output = optarg; break;
        case OPT_CHAIN: args.chain = true; break;
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
    auto list = env.run(collect_chain(env, args));
    if (!list) {
        report_error(list.error().message());
        return 1;
    }
    if (*ofmt == OutputFormat::Json) {
        const Json& out = args.chain ? *list : (*list)[0];
        std::printf("%s\n", qjson_pretty(out).c_str());
    } else {
        bool first = true;
        for (auto& info : *list) {
            if (!first)
                std::printf("\n");
            first = false;
            std::fputs(dump_image_info_human(info).c_str(), stdout);
        }
    }
    return 0;
}

} // namespace kiln::tools
