// kiln-io's command table and the commands that are not plain I/O:
// open, close, flush, map, length, info, truncate, help, quit.
#include <getopt.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/io/commands_private.h"
#include "tools/io/report.h"
#include "util/log.h"

namespace kiln::tools::io {

namespace {

Task<int> cmd_flush(IoSession& s, std::vector<std::string>&)
{
    auto r = co_await s.node()->flush();
    if (!r) {
        std::printf("flush failed: %s\n", std::strerror(r.error().errno_value() ? r.error().errno_value() : EIO));
        co_return -EIO;
    }
    co_return 0;
}

Task<int> cmd_length(IoSession& s, std::vector<std::string>&)
{
    std::printf("%s\n", cvtstr(double(s.node()->size_bytes())).c_str());
    co_return 0;
}

Task<int> cmd_truncate(IoSession& s, std::vector<std::string>& words)
{
    ArgvView argv(words);
    optind = 0;
    opterr = 1;
    block::PreallocMode prealloc = block::PreallocMode::Off;
    int c;
    while ((c = getopt(argv.argc(), argv.argv(), "m:")) != -1) {
        if (c != 'm') {
            print_usage(find_command("truncate"));
            co_return -EINVAL;
        }
        auto mode = block::parse_prealloc(optarg);
        if (!mode) {
            std::printf("Invalid preallocation mode '%s'\n", optarg);
            co_return -EINVAL;
        }
        prealloc = *mode;
    }
    if (optind != argv.argc() - 1) {
        print_usage(find_command("truncate"));
        co_return -EINVAL;
    }
    int64_t size = parse_number_arg(argv.argv()[optind]);
    if (size < 0)
        co_return -EINVAL;
    auto r = co_await s.node()->truncate(uint64_t(size), prealloc, true);
    if (!r) {
        std::printf("truncate: %s\n", r.error().message().c_str());
        co_return -EIO;
    }
    co_return 0;
}

Task<int> cmd_map(IoSession& s, std::vector<std::string>&)
{
    block::BlockNode& node = *s.node();
    uint64_t offset = 0, size = node.size_bytes();
    while (offset < size) {
        // Allocation in the top layer only, merged into runs.
        uint64_t run = 0;
        bool allocated = false;
        bool first = true;
        while (offset + run < size) {
            auto st = co_await node.block_status(offset + run, size - offset - run);
            if (!st) {
                std::printf("is_allocated failed: %s\n", st.error().message().c_str());
                co_return -EIO;
            }
            bool a = st->flags & block::BlockStatus::Allocated;
            if (first) {
                allocated = a;
                first = false;
            } else if (a != allocated) {
                break;
            }
            run += std::max<uint64_t>(st->bytes, 1);
        }
        run = std::min(run, size - offset);
        std::printf("%s (0x%" PRIx64 ") bytes %s at offset %s (0x%" PRIx64 ")\n", cvtstr(double(run)).c_str(), run,
            allocated ? "    allocated" : "not allocated", cvtstr(double(offset)).c_str(), offset);
        offset += run;
    }
    co_return 0;
}

Task<int> cmd_info(IoSession& s, std::vector<std::string>&)
{
    block::BlockNode& node = *s.node();
    std::printf("format name: %s\n", s.image().format.c_str());
    uint64_t cluster = node.cluster_size();
    // qcow2 keeps VM state past what the L1 table maps for the disk; raw
    // has neither (qemu-io prints zeroes).
    Json specific = node.format_specific_info();
    bool extended = specific.is_object() && specific.contains("data") && specific["data"].value("extended-l2", false);
    uint64_t span = cluster * (cluster / (extended ? 16 : 8));
    uint64_t vm_state = span ? (node.size_bytes() + span - 1) / span * span : 0;
    std::printf("cluster size: %s\n", cvtstr(double(cluster)).c_str());
    std::printf("vm state offset: %s\n", cvtstr(double(vm_state)).c_str());
    if (specific.is_object() && specific.contains("data")) {
        std::printf("Format specific information:\n");
        std::fputs(dump_qobject_human(specific["data"], 1).c_str(), stdout);
    }
    co_return 0;
}

Task<int> cmd_close(IoSession& s, std::vector<std::string>&)
{
    co_await s.close();
    co_return 0;
}

Task<int> cmd_open(IoSession& s, std::vector<std::string>& words)
{
    ArgvView argv(words);
    optind = 0;
    opterr = 1;
    ImageRequest req;
    req.flags.read_write = true;
    req.wrap_errors = false;
    std::string options;
    int c;
    while ((c = getopt(argv.argc(), argv.argv(), "snCro:kt:d:U")) != -1) {
        switch (c) {
        case 'r':
            req.flags.read_write = false;
            break;
        case 'n':
            req.flags.cache = block::CacheMode::None;
            break;
        case 'k':
            req.flags.aio = block::AioEngine::Native;
            break;
        case 'U':
            req.flags.force_share = true;
            break;
        case 't': {
            auto mode = block::parse_cache_mode(optarg);
            if (!mode) {
                std::printf("Invalid cache option: %s\n", optarg);
                co_return -EINVAL;
            }
            req.flags.cache = *mode;
            break;
        }
        case 'o':
            if (!options.empty())
                options += ",";
            options += optarg;
            break;
        case 's':
        case 'C':
        case 'd':
            break;
        default:
            print_usage(find_command("open"));
            co_return -EINVAL;
        }
    }
    if (optind == argv.argc() - 1) {
        req.filename = argv.argv()[optind];
        if (!options.empty()) {
            auto opts = OptionList::parse(options);
            if (opts && opts->get("driver"))
                req.format = *opts->get("driver");
        }
    } else if (!options.empty()) {
        req.filename = options;
        req.image_opts = true;
    } else {
        print_usage(find_command("open"));
        co_return -EINVAL;
    }
    if (s.node()) {
        std::fprintf(stderr, "%s: file open already, try 'help close'\n", Log::program_name().c_str());
        co_return -EBUSY;
    }
    auto r = co_await s.open(req);
    if (!r) {
        print_open_failure(req, r.error());
        co_return -EINVAL;
    }
    co_return 0;
}

Task<int> cmd_alloc(IoSession& s, std::vector<std::string>& words)
{
    int64_t offset = parse_number_arg(words[1]);
    if (offset < 0)
        co_return -EINVAL;
    int64_t count = 1;
    if (words.size() > 2) {
        count = parse_number_arg(words[2]);
        if (count < 0)
            co_return -EINVAL;
    }
    block::BlockNode& node = *s.node();
    uint64_t allocated = 0, pos = uint64_t(offset), end = std::min<uint64_t>(node.size_bytes(), offset + count);
    while (pos < end) {
        auto st = co_await node.block_status(pos, end - pos);
        if (!st) {
            std::printf("is_allocated failed: %s\n", st.error().message().c_str());
            co_return -EIO;
        }
        uint64_t n = std::min<uint64_t>(std::max<uint64_t>(st->bytes, 1), end - pos);
        if (st->flags & block::BlockStatus::Allocated)
            allocated += n;
        pos += n;
    }
    std::printf(
        "%" PRIu64 "/%" PRId64 " bytes allocated at offset %s\n", allocated, count, cvtstr(double(offset)).c_str());
    co_return 0;
}

Task<int> cmd_sleep(IoSession& s, std::vector<std::string>& words)
{
    char* end = nullptr;
    long ms = std::strtol(words[1].c_str(), &end, 10);
    if (ms < 0 || *end) {
        std::printf("%s is not a valid number\n", words[1].c_str());
        co_return -EINVAL;
    }
    co_await s.env().loop().sleep_ns(uint64_t(ms) * 1000000);
    co_return 0;
}

Task<int> cmd_quit(IoSession& s, std::vector<std::string>&)
{
    s.quit = true;
    co_return 0;
}

Task<int> cmd_help(IoSession&, std::vector<std::string>& words)
{
    if (words.size() > 1) {
        const IoCommand& cmd = find_command(words[1]);
        if (!cmd.name) {
            std::printf("command %s not found\n", words[1].c_str());
            co_return -EINVAL;
        }
        print_usage(cmd);
        co_return 0;
    }
    for (auto& cmd : io_commands())
        print_usage(cmd);
    std::printf("\nUse 'help commandname' for extended help.\n");
    co_return 0;
}

} // namespace

const std::vector<IoCommand>& io_commands()
{
    // In qemu-io's (alphabetical) order; args_help nullptr prints no
    // argument column, "" an empty one, as qemu-io's help does.
    static const std::vector<IoCommand> table = {
        { "aio_flush", nullptr, cmd_aio_flush, 0, 0, true, nullptr, "completes all outstanding aio requests" },
        { "aio_read", nullptr, cmd_aio_read, 2, -1, true, "[-Ciqv] [-P pattern] off len [len..]",
            "asynchronously reads a number of bytes" },
        { "aio_write", nullptr, cmd_aio_write, 2, -1, true, "[-Cfiquz] [-P pattern] off len [len..]",
            "asynchronously writes a number of bytes" },
        { "alloc", "a", cmd_alloc, 1, 2, true, "offset [count]", "checks if offset is allocated in the file" },
        { "close", "c", cmd_close, 0, 0, true, nullptr, "close the current open file" },
        { "discard", "d", cmd_discard, 2, -1, true, "[-Cq] off len",
            "discards a number of bytes at a specified offset" },
        { "flush", "f", cmd_flush, 0, 0, true, nullptr, "flush all in-core file state to disk" },
        { "help", "?", cmd_help, 0, 1, false, "[command]", "help for one or all commands" },
        { "info", "i", cmd_info, 0, 0, true, nullptr, "prints information about the current file" },
        { "length", "l", cmd_length, 0, 0, true, nullptr, "gets the length of the current file" },
        { "map", nullptr, cmd_map, 0, 0, true, "", "prints the allocated areas of a file" },
        { "open", "o", cmd_open, 1, -1, false, "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
            "open the file specified by path" },
        { "quit", "q", cmd_quit, 0, 0, false, nullptr, "exit the program" },
        { "read", "r", cmd_read, 2, -1, true, "[-abCqv] [-P pattern [-s off] [-l len]] off len",
            "reads a number of bytes at a specified offset" },
        { "readv", nullptr, cmd_readv, 2, -1, true, "[-Cqv] [-P pattern] off len [len..]",
            "reads a number of bytes at a specified offset" },
        { "sleep", nullptr, cmd_sleep, 1, 1, false, nullptr, "waits for the given value in milliseconds" },
        { "truncate", "t", cmd_truncate, 1, 3, true, "[-m prealloc_mode] off",
            "truncates the current file at the given offset" },
        { "write", "w", cmd_write, 2, -1, true, "[-bcCfnquz] [-P pattern] off len",
            "writes a number of bytes at a specified offset" },
        { "writev", nullptr, cmd_writev, 2, -1, true, "[-Cfq] [-P pattern] off len [len..]",
            "writes a number of bytes at a specified offset" },
    };
    return table;
}

const IoCommand& find_command(const std::string& name)
{
    static const IoCommand none {};
    for (auto& cmd : io_commands())
        if (name == cmd.name || (cmd.alt && name == cmd.alt))
            return cmd;
    return none;
}

void print_usage(const IoCommand& cmd)
{
    std::printf("%s ", cmd.name);
    if (cmd.args_help)
        std::printf("%s ", cmd.args_help);
    std::printf("-- %s\n", cmd.oneline);
}

std::vector<std::string> split_words(const std::string& line)
{
    std::vector<std::string> words;
    std::istringstream in(line);
    std::string w;
    while (in >> w)
        words.push_back(w);
    return words;
}

Task<bool> IoSession::run_line(const std::string& line)
{
    auto words = split_words(line);
    if (words.empty())
        co_return true;
    const IoCommand& cmd = find_command(words[0]);
    if (!cmd.name) {
        std::fprintf(stderr, "command \"%s\" not found\n", words[0].c_str());
        co_return false;
    }
    int argc = int(words.size()) - 1;
    if (argc < cmd.min_args || (cmd.max_args >= 0 && argc > cmd.max_args)) {
        if (cmd.max_args < 0)
            std::fprintf(
                stderr, "bad argument count %d to %s, expected at least %d arguments\n", argc, cmd.name, cmd.min_args);
        else if (cmd.min_args == cmd.max_args)
            std::fprintf(stderr, "bad argument count %d to %s, expected %d arguments\n", argc, cmd.name, cmd.min_args);
        else
            std::fprintf(stderr, "bad argument count %d to %s, expected between %d and %d arguments\n", argc, cmd.name,
                cmd.min_args, cmd.max_args);
        co_return false;
    }
    if (cmd.needs_image && !node()) {
        std::fprintf(stderr, "no file open, try 'help open'\n");
        co_return false;
    }
    // No flush here: qemu-io leaves stdout to stdio's buffering, which
    // decides how stdout and stderr interleave in a pipe.
    int ret = co_await cmd.fn(*this, words);
    co_return ret >= 0;
}

Task<Result<void>> IoSession::open(ImageRequest request)
{
    auto image = CO_TRY(co_await open_tool_image(m_env.ctx(), std::move(request)));
    m_image = std::move(image);
    co_return ok();
}

Task<void> IoSession::close()
{
    co_await m_aio.wait_idle();
    if (m_image.node) {
        auto r = co_await close_image(m_image);
        if (!r)
            report_error(r.error().message());
    }
}

} // namespace kiln::tools::io
