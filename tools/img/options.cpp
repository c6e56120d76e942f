#include "tools/img/options.h"

#include "tools/img/commands.h"

namespace kiln::tools {

namespace {
constexpr int k_opt_output = 258;
}

int parse_options(ToolEnv& env, int argc, char** argv, const char* short_options, unsigned long_sets,
                  std::vector<option> extra_long, CommonOptions& common, const std::function<int(int)>& on_option)
{
    std::vector<option> longs = {{"help", no_argument, nullptr, 'h'}};
    if (long_sets & k_long_object)
        longs.push_back({"object", required_argument, nullptr, k_opt_object});
    if (long_sets & k_long_image_opts)
        longs.push_back({"image-opts", no_argument, nullptr, k_opt_image_opts});
    if (long_sets & k_long_force_share)
        longs.push_back({"force-share", no_argument, nullptr, 'U'});
    if (long_sets & k_long_format)
        longs.push_back({"format", required_argument, nullptr, 'f'});
    if (long_sets & k_long_output)
        longs.push_back({"output", required_argument, nullptr, k_opt_output});
    longs.insert(longs.end(), extra_long.begin(), extra_long.end());
    longs.push_back({nullptr, 0, nullptr, 0});
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, short_options, longs.data(), nullptr);
        if (c == -1)
            break;
        switch (c) {
        case ':':
        case '?': return getopt_failure(c, argv);
        case 'h': return img_help(env);
        case 'f': common.format = optarg; break;
        case 'q': common.quiet = true; break;
        case 'U': common.force_share = true; break;
        case 'T': {
            auto mode = block::parse_cache_mode(optarg);
            if (!mode) {
                report_error(std::string("Invalid source cache option: ") + optarg);
                return 1;
            }
            common.src_cache = *mode;
            break;
        }
        case k_opt_output: common.output_text = optarg; break;
        case k_opt_image_opts: common.image_opts = true; break;
        case k_opt_object:
            if (!handle_object_option(env, optarg))
                return 1;
            break;
        default:
            if (int rc = on_option(c); rc != k_parse_continue)
                return rc;
        }
    }
    return k_parse_continue;
}

std::optional<std::string> one_filename(int argc, char** argv, CommonOptions& common)
{
    if (optind != argc - 1) {
        error_exit("Expecting one image file name");
        return std::nullopt;
    }
    auto ofmt = parse_output_format(common.output_text);
    if (!ofmt) {
        report_error(ofmt.error().message());
        return std::nullopt;
    }
    common.output = *ofmt;
    return std::string(argv[optind]);
}

ImageRequest request_from(const CommonOptions& common, const std::string& filename)
{
    ImageRequest req;
    req.filename = filename;
    req.format = common.format;
    req.image_opts = common.image_opts;
    req.flags.force_share = common.force_share;
    req.flags.cache = common.src_cache;
    return req;
}

Task<std::optional<OpenedImage>> open_or_report(ToolEnv& env, ImageRequest request)
{
    auto image = co_await open_tool_image(env.ctx(), std::move(request));
    if (!image) {
        report_error(image.error().message());
        co_return std::nullopt;
    }
    co_return std::move(image).value();
}

Task<int> close_with_status(OpenedImage& image, int ret)
{
    auto closed = co_await close_image(image);
    if (!closed && ret == 0) {
        report_error(closed.error().message());
        ret = 1;
    }
    co_return ret;
}

} // namespace kiln::tools
