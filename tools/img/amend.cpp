// kiln-img amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt]
// [-t cache] [--force] -o options filename
#include <cstdio>

#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

constexpr int k_opt_force = 300;

struct AmendArgs {
    CommonOptions common;
    std::string options;
    std::string filename;
    block::CacheMode cache = block::CacheMode::Writeback; // -t
    bool progress = false;
    bool force = false;
};

// qemu-img 7.2's lists for the formats that have amend options.
const char* const k_luks_amend_help =
    "Amend options for 'luks':\n"
    "  iter-time=<num>        - Time to spend in PBKDF in milliseconds\n"
    "  keyslot=<num>          - Select a single keyslot to modify explicitly\n"
    "  new-secret=<str>       - New secret to set in the matching keyslots. Empty string to erase\n"
    "  old-secret=<str>       - Select all keyslots that match this password\n"
    "  state=<str>            - Select new state of affected keyslots (active/inactive)\n";

const char* const k_qcow2_amend_help =
    "Amend options for 'qcow2':\n"
    "  backing_file=<str>     - File name of a base image\n"
    "  backing_fmt=<str>      - Image format of the base image\n"
    "  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])\n"
    "  data_file=<str>        - File name of an external data file\n"
    "  data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image\n"
    "  encrypt.iter-time=<num> - Time to spend in PBKDF in milliseconds\n"
    "  encrypt.keyslot=<num>  - Select a single keyslot to modify explicitly\n"
    "  encrypt.new-secret=<str> - New secret to set in the matching keyslots. Empty string to erase\n"
    "  encrypt.old-secret=<str> - Select all keyslots that match this password\n"
    "  encrypt.state=<str>    - Select new state of affected keyslots (active/inactive)\n"
    "  lazy_refcounts=<bool (on/off)> - Postpone refcount updates\n"
    "  refcount_bits=<num>    - Width of a reference count entry in bits\n"
    "  size=<size>            - Virtual disk size\n";

bool wants_help(const std::string& options)
{
    auto parsed = OptionList::parse(options);
    if (!parsed)
        return options == "help" || options == "?";
    for (auto& [k, v] : parsed->entries())
        if ((k == "help" || k == "?") && v == "on")
            return true;
    return false;
}

Task<int> do_amend(ToolEnv& env, AmendArgs args)
{
    auto opts = OptionList::parse(args.options);
    if (!opts) {
        report_error(opts.error().message());
        co_return 1;
    }
    if (wants_help(args.options)) {
        std::string fmt = args.common.format;
        if (fmt.empty() && !args.filename.empty()) {
            auto probed = co_await env.ctx().probe_format(args.filename, block::OpenFlags{});
            if (probed)
                fmt = *probed;
        }
        if (fmt.empty()) {
            report_error("Expecting one image file name");
            co_return 1;
        }
        if (fmt != "qcow2" && fmt != "luks") {
            report_error("Format driver '" + fmt + "' does not support option amendment");
            co_return 1;
        }
        std::fputs(fmt == "luks" ? k_luks_amend_help : k_qcow2_amend_help, stdout);
        co_return 0;
    }
    if (args.filename.empty()) {
        report_error("Expecting one image file name");
        co_return 1;
    }
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = true;
    req.flags.no_backing = true;
    req.flags.cache = args.cache;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    Progress progress(args.progress && !args.common.quiet);
    progress.start();
    block::AmendFlags flags;
    flags.force = args.force;
    auto r = co_await image->node->amend(*opts, flags);
    progress.set(100);
    progress.end();
    int ret = 0;
    if (!r) {
        report_error(r.error().message());
        ret = 1;
    }
    co_return co_await close_with_status(*image, ret);
}

} // namespace

int img_amend(ToolEnv& env, int argc, char** argv)
{
    AmendArgs args;
    std::vector<option> extra = {{"force", no_argument, nullptr, k_opt_force}};
    int rc = parse_options(env, argc, argv, ":ho:f:t:pq", k_long_object | k_long_image_opts, extra, args.common,
                           [&](int c) {
                               switch (c) {
                               case 'o':
                                   append_options(args.options, optarg);
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
                               case 'p':
                                   args.progress = true;
                                   break;
                               case k_opt_force:
                                   args.force = true;
                                   break;
                               }
                               return k_parse_continue;
                           });
    if (rc != k_parse_continue)
        return rc;
    if (args.options.empty()) {
        report_error("Must specify options (-o)");
        std::fprintf(stderr, "Try 'kiln-img --help' for more information\n");
        return 1;
    }
    if (optind < argc)
        args.filename = argv[optind++];
    if (optind < argc) {
        report_error("Expecting one image file name");
        return 1;
    }
    return env.run(do_amend(env, args));
}

} // namespace kiln::tools
