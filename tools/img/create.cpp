// kiln-img create [--object objectdef] [-q] [-f fmt] [-b backing_file
// [-F backing_fmt]] [-u] [-o options] filename [size]
#include <cstdio>

#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "tools/img/create_options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

struct CreateArgs {
    std::string format = "raw";
    std::string filename;
    std::string backing;
    std::string backing_format;
    std::string options;
    std::optional<uint64_t> size;
    bool unsafe = false;
    bool quiet = false;
};

bool is_help_option(const std::string& options)
{
    if (options.empty())
        return false;
    auto parsed = OptionList::parse(options);
    if (!parsed)
        return options == "help" || options == "?";
    for (auto& [k, v] : parsed->entries())
        if ((k == "help" || k == "?") && v == "on")
            return true;
    return false;
}

// Size of the backing image, opened as qemu-img does to check it exists.
Task<Result<uint64_t>> backing_size(ToolEnv& env, const CreateArgs& args)
{
    ImageRequest req;
    req.filename = full_backing_filename(args.filename, args.backing);
    req.format = args.backing_format;
    req.flags.force_share = true;
    req.flags.no_io = true;
    req.warn_raw_probe = false;
    req.wrap_errors = false;
    auto image = co_await open_tool_image(env.ctx(), req);
    if (!image)
        co_return Error(image.error().kind(), image.error().message() + "\nCould not open backing image.");
    uint64_t size = image->node->size_bytes();
    CO_TRY(co_await close_image(*image));
    co_return size;
}

Task<Result<void>> do_create(ToolEnv& env, CreateArgs args)
{
    const block::FormatDriver* driver = env.ctx().find_format(args.format);
    if (!driver)
        co_return Error::invalid("Unknown file format '" + args.format + "'");
    OptionList opts;
    if (!args.options.empty())
        opts = CO_TRY(OptionList::parse(args.options));
    CO_TRY(validate_create_options(*driver, opts));
    if (auto s = opts.get("size")) {
        if (args.size)
            co_return Error::invalid("The image size must be specified only once");
        auto parsed = parse_size(*s);
        if (!parsed)
            co_return parsed.error();
        args.size = *parsed;
        opts.remove("size");
    }
    if (!args.backing.empty())
        opts.set("backing_file", args.backing);
    if (!args.backing_format.empty())
        opts.set("backing_fmt", args.backing_format);
    args.backing = opts.get("backing_file").value_or("");
    args.backing_format = opts.get("backing_fmt").value_or("");
    if (!args.backing.empty()) {
        if (args.backing_format.empty())
            co_return Error::invalid("Backing file specified without backing format");
        if (!args.unsafe) {
            auto size = co_await backing_size(env, args);
            if (!size)
                co_return size.error();
            if (!args.size)
                args.size = *size;
        }
    }
    if (!args.size)
        co_return Error::invalid("Image creation needs a size parameter");
    if (!args.quiet) {
        std::printf("Formatting '%s', %s\n", args.filename.c_str(),
                    formatting_line_options(*driver, opts, *args.size).c_str());
        std::fflush(stdout);
    }
    CO_TRY(co_await env.ctx().create_image(args.format, args.filename, *args.size, opts));
    co_return ok();
}

} // namespace


int img_create(ToolEnv& env, int argc, char** argv)
{
    CreateArgs args;
    CommonOptions common;
    int rc = parse_options(env, argc, argv, ":F:b:f:ho:qu", k_long_object, {}, common, [&](int c) {
        switch (c) {
        case 'F': args.backing_format = optarg; break;
        case 'b': args.backing = optarg; break;
        case 'o':
            if (!args.options.empty())
                args.options += ",";
            args.options += optarg;
            break;
        case 'u': args.unsafe = true; break;
        }
        return k_parse_continue;
    });
    if (rc != k_parse_continue)
        return rc;
    if (!common.format.empty())
        args.format = common.format;
    args.quiet = common.quiet;
    if (is_help_option(args.options)) {
        const block::FormatDriver* driver = env.ctx().find_format(args.format);
        if (!driver) {
            report_error("Unknown file format '" + args.format + "'");
            return 1;
        }
        std::fputs(create_options_help(*driver, optind < argc).c_str(), stdout);
        return 0;
    }
    if (optind >= argc)
        return error_exit("Expecting image file name");
    args.filename = argv[optind++];
    if (optind < argc) {
        auto size = parse_image_size(argv[optind++]);
        if (!size)
            return report_invalid_image_size();
        args.size = *size;
    }
    if (optind != argc)
        return error_exit(std::string("Unexpected argument: ") + argv[optind]);
    auto r = env.run(do_create(env, args));
    if (!r) {
        report_error(args.filename + ": " + r.error().message());
        return 1;
    }
    return 0;
}

} // namespace kiln::tools
