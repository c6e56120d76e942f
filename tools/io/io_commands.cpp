// kiln-io's data commands: read, write, aio_read, aio_write, aio_flush,
// discard. Output and failures as qemu-io prints them.
#include <getopt.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>

#include "block/qiov.h"
#include "tools/common/cli.h"
#include "tools/io/commands_private.h"
#include "tools/io/report.h"

namespace kiln::tools::io {

namespace {

constexpr int64_t k_max_request_bytes = 2147483136;

double seconds_since(std::chrono::steady_clock::time_point t)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct RwOptions {
    bool quiet = false, verbose = false, count_only = false, vmstate = false;
    bool zero = false, unmap = false, compressed = false, fua = false;
    std::optional<int> pattern;
    int64_t pattern_offset = 0;
    std::optional<int64_t> pattern_count;
    int64_t offset = 0;
    std::vector<int64_t> lengths;
    int64_t total() const
    {
        int64_t t = 0;
        for (auto l : lengths)
            t += l;
        return t;
    }
};

std::optional<int> parse_pattern(const char* arg)
{
    char* end = nullptr;
    long v = std::strtol(arg, &end, 0);
    if (v < 0 || v > 255 || *end) {
        std::printf("%s is not a valid pattern byte\n", arg);
        return std::nullopt;
    }
    return int(v);
}

// Parses [-opts] off len [len...]; prints the error and returns false.
bool parse_rw(
    const IoCommand& cmd, std::vector<std::string>& words, const char* optstring, RwOptions& o, bool many_lengths)
{
    ArgvView argv(words);
    optind = 0;
    opterr = 1; // getopt's own "read: invalid option -- 'x'", as qemu-io
    int c;
    while ((c = getopt(argv.argc(), argv.argv(), optstring)) != -1) {
        switch (c) {
        case 'q':
            o.quiet = true;
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'C':
            o.count_only = true;
            break;
        case 'b':
            o.vmstate = true;
            break;
        case 'z':
            o.zero = true;
            break;
        case 'u':
            o.unmap = true;
            break;
        case 'c':
            o.compressed = true;
            break;
        case 'f':
            o.fua = true;
            break;
        case 'n':
        case 'i':
            break;
        case 'P':
            o.pattern = parse_pattern(optarg);
            if (!o.pattern)
                return false;
            break;
        case 's':
        case 'l': {
            int64_t v = parse_number_arg(optarg);
            if (v < 0)
                return false;
            if (c == 's')
                o.pattern_offset = v;
            else
                o.pattern_count = v;
            break;
        }
        default:
            print_usage(cmd);
            return false;
        }
    }
    int left = argv.argc() - optind;
    if (left < 2 || (!many_lengths && left != 2)) {
        print_usage(cmd);
        return false;
    }
    o.offset = parse_number_arg(argv.argv()[optind++]);
    if (o.offset < 0)
        return false;
    while (optind < argv.argc()) {
        const char* text = argv.argv()[optind++];
        int64_t len = parse_number_arg(text);
        if (len < 0)
            return false;
        // QEMU's BDRV_REQUEST_MAX_BYTES; also keeps buffers allocatable.
        if (len > k_max_request_bytes) {
            if (many_lengths)
                std::printf("Argument '%s' exceeds maximum size %" PRId64 "\n", text, k_max_request_bytes);
            else if (std::string(cmd.name) == "write")
                std::printf("length cannot exceed %" PRId64 " without -n, given %s\n", k_max_request_bytes, text);
            else
                std::printf("length cannot exceed %" PRId64 ", given %s\n", k_max_request_bytes, text);
            return false;
        }
        o.lengths.push_back(len);
    }
    if (many_lengths && o.total() > k_max_request_bytes) {
        std::printf(
            "Argument '%s' exceeds maximum size %" PRId64 "\n", argv.argv()[argv.argc() - 1], k_max_request_bytes);
        return false;
    }
    return true;
}

bool in_range(block::BlockNode& node, int64_t offset, int64_t bytes, bool vmstate)
{
    if (vmstate)
        return true;
    return uint64_t(offset) <= node.size_bytes() && uint64_t(bytes) <= node.size_bytes() - uint64_t(offset);
}

int fail(const char* what, const Error& e)
{
    if (e.kind() == ErrorKind::PermissionDenied) {
        report_error("Block node is read-only");
        return -EPERM;
    }
    int err = e.errno_value() ? e.errno_value() : EIO;
    std::printf("%s failed: %s\n", what, std::strerror(err));
    return -err;
}

// Pattern check of a read buffer; prints qemu-io's message.
bool verify_pattern(const RwOptions& o, const uint8_t* buf)
{
    if (!o.pattern)
        return true;
    int64_t count = o.pattern_count.value_or(o.total() - o.pattern_offset);
    for (int64_t i = 0; i < count; ++i) {
        if (buf[o.pattern_offset + i] != uint8_t(*o.pattern)) {
            std::printf("Pattern verification failed at offset %" PRId64 ", %" PRId64 " bytes\n",
                o.offset + o.pattern_offset, count);
            return false;
        }
    }
    return true;
}

Task<Result<void>> do_read(block::BlockNode& node, const RwOptions& o, uint8_t* buf)
{
    int64_t bytes = o.total();
    if (!in_range(node, o.offset, bytes, o.vmstate))
        co_return Error::from_errno(EIO, "request past the end of the image");
    if (o.vmstate)
        co_return co_await node.load_vmstate(uint64_t(o.offset), block::QIov(buf, size_t(bytes)));
    co_return co_await node.preadv(uint64_t(o.offset), block::QIov(buf, size_t(bytes)));
}

Task<Result<void>> do_write(block::BlockNode& node, const RwOptions& o, uint8_t* buf)
{
    int64_t bytes = o.total();
    if (!in_range(node, o.offset, bytes, o.vmstate))
        co_return Error::from_errno(EIO, "request past the end of the image");
    block::RequestFlags flags = o.fua ? block::RequestFlags::Fua : block::RequestFlags::None;
    if (o.zero)
        co_return co_await node.pwrite_zeroes(
            uint64_t(o.offset), uint64_t(bytes), o.unmap ? flags | block::RequestFlags::MayUnmap : flags);
    if (o.vmstate)
        co_return co_await node.save_vmstate(uint64_t(o.offset), block::QIov(buf, size_t(bytes)));
    if (o.compressed)
        co_return co_await node.pwritev_compressed(uint64_t(o.offset), block::QIov(buf, size_t(bytes)));
    co_return co_await node.pwritev(uint64_t(o.offset), block::QIov(buf, size_t(bytes)), flags);
}

std::vector<uint8_t> make_buffer(int64_t bytes, int fill) { return std::vector<uint8_t>(size_t(bytes), uint8_t(fill)); }

} // namespace

Task<int> cmd_read(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("read"), words, "bCl:pP:qs:v", o, false))
        co_return -EINVAL;
    auto buf = make_buffer(o.total(), 0xab);
    auto t = std::chrono::steady_clock::now();
    auto r = co_await do_read(*s.node(), o, buf.data());
    double secs = seconds_since(t);
    if (!r)
        co_return fail("read", r.error());
    int ret = verify_pattern(o, buf.data()) ? 0 : -EINVAL;
    if (o.quiet)
        co_return ret;
    if (o.verbose)
        dump_buffer(buf.data(), o.offset, o.total());
    if (!o.count_only)
        print_report("read", secs, o.offset, o.total(), o.total(), 1);
    co_return ret;
}

// The shared end of write and writev: time the request, report like qemu-io.
Task<int> timed_write(IoSession& s, const RwOptions& o, std::vector<uint8_t>& buf, const char* name)
{
    auto t = std::chrono::steady_clock::now();
    auto r = co_await do_write(*s.node(), o, buf.data());
    double secs = seconds_since(t);
    if (!r)
        co_return fail(name, r.error());
    if (!o.quiet && !o.count_only)
        print_report("wrote", secs, o.offset, o.total(), o.total(), 1);
    co_return 0;
}

Task<int> cmd_write(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("write"), words, "bcCfnpP:quz", o, false))
        co_return -EINVAL;
    if (o.zero && o.pattern) {
        std::printf("Only one of -z, -P, and -s can be specified at the same time\n");
        co_return -EINVAL;
    }
    if (o.unmap && !o.zero) {
        std::printf("-u requires -z to be specified\n");
        co_return -EINVAL;
    }
    auto buf = make_buffer(o.zero ? 0 : o.total(), o.pattern.value_or(0xcd));
    co_return co_await timed_write(s, o, buf, "write");
}

Task<int> cmd_readv(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("readv"), words, "CP:qv", o, true))
        co_return -EINVAL;
    auto buf = make_buffer(o.total(), 0xab);
    auto t = std::chrono::steady_clock::now();
    auto r = co_await do_read(*s.node(), o, buf.data());
    double secs = seconds_since(t);
    if (!r)
        co_return fail("readv", r.error());
    int ret = verify_pattern(o, buf.data()) ? 0 : -EINVAL;
    if (!o.quiet) {
        if (o.verbose)
            dump_buffer(buf.data(), o.offset, o.total());
        if (!o.count_only)
            print_report("read", secs, o.offset, o.total(), o.total(), 1);
    }
    co_return ret;
}

Task<int> cmd_writev(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("writev"), words, "CfP:q", o, true))
        co_return -EINVAL;
    auto buf = make_buffer(o.total(), o.pattern.value_or(0xcd));
    co_return co_await timed_write(s, o, buf, "writev");
}

Task<int> cmd_discard(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("discard"), words, "Cq", o, false))
        co_return -EINVAL;
    if (!in_range(*s.node(), o.offset, o.total(), false)) {
        std::printf("discard failed: %s\n", std::strerror(EIO));
        co_return -EIO;
    }
    auto t = std::chrono::steady_clock::now();
    auto r = co_await s.node()->pdiscard(uint64_t(o.offset), uint64_t(o.total()));
    double secs = seconds_since(t);
    if (!r)
        co_return fail("discard", r.error());
    if (!o.quiet && !o.count_only)
        print_report("discard", secs, o.offset, o.total(), o.total(), 1);
    co_return 0;
}

namespace {

// One aio request, run detached; reports when it completes.
Task<void> aio_request(IoSession& s, RwOptions o, bool write, std::shared_ptr<std::vector<uint8_t>> buf)
{
    auto t = std::chrono::steady_clock::now();
    auto r = write ? co_await do_write(*s.node(), o, buf->data()) : co_await do_read(*s.node(), o, buf->data());
    double secs = seconds_since(t);
    if (!r) {
        fail(write ? "aio_write" : "aio_read", r.error());
        s.aio_failed = true;
    } else {
        if (!write && !verify_pattern(o, buf->data()))
            s.aio_failed = true;
        if (!o.quiet) {
            if (!write && o.verbose)
                dump_buffer(buf->data(), o.offset, o.total());
            if (!o.count_only)
                print_report(write ? "wrote" : "read", secs, o.offset, o.total(), o.total(), 1);
        }
    }
    s.aio().done();
}

} // namespace

Task<int> cmd_aio_read(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("aio_read"), words, "CP:qiv", o, true))
        co_return -EINVAL;
    auto buf = std::make_shared<std::vector<uint8_t>>(make_buffer(o.total(), 0xab));
    s.aio().add();
    spawn(aio_request(s, o, false, buf));
    co_return 0;
}

Task<int> cmd_aio_write(IoSession& s, std::vector<std::string>& words)
{
    RwOptions o;
    if (!parse_rw(find_command("aio_write"), words, "CfiqP:uz", o, true))
        co_return -EINVAL;
    // qemu-io's aio_write takes -z with -P (the pattern is unused).
    if (o.unmap && !o.zero) {
        std::printf("-u requires -z to be specified\n");
        co_return -EINVAL;
    }
    auto buf = std::make_shared<std::vector<uint8_t>>(make_buffer(o.zero ? 0 : o.total(), o.pattern.value_or(0xcd)));
    s.aio().add();
    spawn(aio_request(s, o, true, buf));
    co_return 0;
}

Task<int> cmd_aio_flush(IoSession& s, std::vector<std::string>&)
{
    co_await s.aio().wait_idle();
    auto r = co_await s.node()->flush();
    if (!r)
        co_return fail("aio_flush", r.error());
    co_return 0;
}

} // namespace kiln::tools::io
