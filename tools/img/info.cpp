// kiln-img info [--object objectdef] [--image-opts] [-f fmt]
// [--output=ofmt] [--backing-chain] [-U] filename
#include <cstdio>
#include <set>

#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

struct InfoArgs {
    CommonOptions common;
    std::string filename;
    bool chain = false;
};

Task<Result<Json>> collect_chain(ToolEnv& env, InfoArgs args)
{
    Json list = Json::array();
    std::set<std::string> seen;
    std::string filename = args.filename;
    std::string format = args.common.format;
    bool image_opts = args.common.image_opts;
    for (;;) {
        if (!seen.insert(filename).second)
            co_return Error::invalid("Backing file '" + filename + "' creates an infinite loop.");
        ImageRequest req = request_from(args.common, filename);
        req.format = format;
        req.image_opts = image_opts;
        req.flags.no_backing = true;
        req.flags.no_io = true;
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
    enum { OPT_CHAIN = 300 };
    InfoArgs args;
    int rc = parse_options(env, argc, argv, ":f:hU", k_long_standard | k_long_format | k_long_output,
                           {{"backing-chain", no_argument, nullptr, OPT_CHAIN}}, args.common, [&](int c) {
                               if (c == OPT_CHAIN)
                                   args.chain = true;
                               return k_parse_continue;
                           });
    if (rc != k_parse_continue)
        return rc;
    auto filename = one_filename(argc, argv, args.common);
    if (!filename)
        return 1;
    args.filename = *filename;
    auto list = env.run(collect_chain(env, args));
    if (!list) {
        report_error(list.error().message());
        return 1;
    }
    if (args.common.output == OutputFormat::Json) {
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
