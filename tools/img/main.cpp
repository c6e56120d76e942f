// kiln-img: qemu-img's command line over Kiln's block layer. Global
// options, then one subcommand (see commands.h).
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "util/log.h"

using namespace kiln;
using namespace kiln::tools;

namespace {

struct Command {
    const char* name;
    int (*run)(ToolEnv&, int, char**);
};

// An explicit table, in qemu-img's help order.
const Command k_commands[] = {
    { "amend", img_amend },
    { "bench", img_bench },
    { "bitmap", img_bitmap },
    { "check", img_check },
    { "commit", img_commit },
    { "compare", img_compare },
    { "convert", img_convert },
    { "create", img_create },
    { "dd", img_dd },
    { "info", img_info },
    { "map", img_map },
    { "measure", img_measure },
    { "snapshot", img_snapshot },
    { "rebase", img_rebase },
    { "resize", img_resize },
};

} // namespace

int main(int argc, char** argv)
{
    Log::set_program_name("kiln-img");
    static const option long_options[] = {
        { "help", no_argument, nullptr, 'h' },
        { "version", no_argument, nullptr, 'V' },
        { "trace", required_argument, nullptr, 'T' },
        { nullptr, 0, nullptr, 0 },
    };
    if (argc < 2)
        return error_exit("Not enough arguments");
    auto env = ToolEnv::create();
    if (!env) {
        report_error(env.error().message());
        return 1;
    }
    for (;;) {
        int c = getopt_long(argc, argv, "+:hVT:", long_options, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case ':':
        case '?':
            return getopt_failure(c, argv);
        case 'h':
            print_img_help(env->get());
            return 0;
        case 'V':
            print_img_version();
            return 0;
        case 'T':
            break; // tracing: accepted for compatibility
        }
    }
    if (optind >= argc)
        return error_exit("Not enough arguments");
    const char* name = argv[optind];
    int sub_argc = argc - optind;
    char** sub_argv = argv + optind;
    for (const Command& cmd : k_commands)
        if (std::strcmp(cmd.name, name) == 0)
            return cmd.run(**env, sub_argc, sub_argv);
    return error_exit(std::string("Command not found: ") + name);
}
