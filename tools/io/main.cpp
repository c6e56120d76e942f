// kiln-io: qemu-io's command language over Kiln's block layer.
//   kiln-io [-f fmt] [-U] [-r] [-n] [-t cache] [-i aio] [-c cmd]... [file]
// Without -c, commands are read from stdin ("kiln-io> " on a terminal).
#include <getopt.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "tools/common/cli.h"
#include "tools/io/report.h"
#include "tools/io/session.h"
#include "util/log.h"

using namespace kiln;
using namespace kiln::tools;
using namespace kiln::tools::io;

namespace {

void usage()
{
    std::printf("Usage: kiln-io [OPTIONS]... [-c STRING]... [file]\n"
                "Kiln disk exerciser\n"
                "\n"
                "  --object OBJECTDEF   define an object such as 'secret' for\n"
                "                       passwords and/or encryption keys\n"
                "  --image-opts         treat file as option string\n"
                "  -c, --cmd STRING     execute command with its arguments\n"
                "                       from the given string\n"
                "  -f, --format FMT     specifies the block driver to use\n"
                "  -r, --read-only      export read-only\n"
                "  -s, --snapshot       use snapshot file (accepted, not supported)\n"
                "  -n, --nocache        disable host cache, short for -t none\n"
                "  -C, --copy-on-read   enable copy-on-read (accepted, ignored)\n"
                "  -m, --misalign       misalign allocations for O_DIRECT (ignored)\n"
                "  -k, --native-aio     use kernel AIO implementation\n"
                "                       (Linux only, prefer use of -i)\n"
                "  -i, --aio=MODE       use AIO mode (threads, native or io_uring)\n"
                "  -t, --cache=MODE     use the given cache mode for the image\n"
                "  -d, --discard=MODE   use the given discard mode for the image (ignored)\n"
                "  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
                "                       accepted and ignored\n"
                "  -U, --force-share    force shared permissions\n"
                "  -h, --help           display this help and exit\n"
                "  -V, --version        output version information and exit\n"
                "\n"
                "See 'kiln-io -c help' for information on available commands.\n");
}

Task<int> run(ToolEnv& env, IoSession& session, std::vector<std::string> commands, ImageRequest request, bool have_file)
{
    if (have_file) {
        auto r = co_await session.open(request);
        if (!r) {
            print_open_failure(request, r.error());
            co_return 1;
        }
    }
    bool failed = false;
    if (!commands.empty()) {
        for (auto& line : commands) {
            if (session.quit)
                break;
            if (!co_await session.run_line(line))
                failed = true;
        }
    } else {
        // qemu-io prompts whether or not stdin is a terminal.
        bool tty = isatty(STDIN_FILENO);
        std::string line;
        for (;;) {
            std::printf("kiln-io> ");
            std::fflush(stdout);
            if (!std::getline(std::cin, line))
                break;
            if (!co_await session.run_line(line))
                failed = true;
            if (session.quit)
                break;
        }
        if (tty && !session.quit)
            std::printf("\n");
    }
    co_await session.close();
    if (session.aio_failed)
        failed = true;
    (void)env;
    co_return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv)
{
    Log::set_program_name("kiln-io");
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const option long_options[] = {
        { "help", no_argument, nullptr, 'h' },
        { "version", no_argument, nullptr, 'V' },
        { "cmd", required_argument, nullptr, 'c' },
        { "format", required_argument, nullptr, 'f' },
        { "read-only", no_argument, nullptr, 'r' },
        { "snapshot", no_argument, nullptr, 's' },
        { "nocache", no_argument, nullptr, 'n' },
        { "copy-on-read", no_argument, nullptr, 'C' },
        { "misalign", no_argument, nullptr, 'm' },
        { "native-aio", no_argument, nullptr, 'k' },
        { "aio", required_argument, nullptr, 'i' },
        { "discard", required_argument, nullptr, 'd' },
        { "cache", required_argument, nullptr, 't' },
        { "trace", required_argument, nullptr, 'T' },
        { "object", required_argument, nullptr, OPT_OBJECT },
        { "image-opts", no_argument, nullptr, OPT_IMAGE_OPTS },
        { "force-share", no_argument, nullptr, 'U' },
        { nullptr, 0, nullptr, 0 },
    };
    auto env = ToolEnv::create();
    if (!env) {
        report_error(env.error().message());
        return 1;
    }
    ImageRequest request;
    request.flags.read_write = true;
    request.wrap_errors = false;
    std::vector<std::string> commands;
    int c;
    while ((c = getopt_long(argc, argv, "snmkCc:d:f:rhT:Vt:Ui:", long_options, nullptr)) != -1) {
        switch (c) {
        case 's':
        case 'm':
        case 'C':
        case 'd':
        case 'T':
            break;
        case 'n':
            request.flags.cache = block::CacheMode::None;
            break;
        case 'k':
            request.flags.aio = block::AioEngine::Native;
            break;
        case 'c':
            commands.push_back(optarg);
            break;
        case 'f':
            request.format = optarg;
            break;
        case 'r':
            request.flags.read_write = false;
            break;
        case 'U':
            request.flags.force_share = true;
            break;
        case 'i': {
            auto engine = block::parse_aio_engine(optarg);
            if (!engine) {
                report_error(std::string("Invalid aio option: ") + optarg);
                return 1;
            }
            request.flags.aio = *engine;
            break;
        }
        case 't': {
            auto mode = block::parse_cache_mode(optarg);
            if (!mode) {
                report_error(std::string("Invalid cache option: ") + optarg);
                return 1;
            }
            request.flags.cache = *mode;
            break;
        }
        case 'h':
            usage();
            return 0;
        case 'V':
            std::printf("kiln-io version 0.1.0\n");
            return 0;
        case OPT_OBJECT:
            if (auto r = add_object((*env)->ctx(), optarg); !r) {
                report_error(r.error().message());
                return 1;
            }
            break;
        case OPT_IMAGE_OPTS:
            request.image_opts = true;
            break;
        default:
            usage();
            return 1;
        }
    }
    if (argc - optind > 1) {
        usage();
        return 1;
    }
    bool have_file = optind < argc;
    if (have_file)
        request.filename = argv[optind];
    IoSession session(**env);
    return (*env)->run(run(**env, session, commands, request, have_file));
}
