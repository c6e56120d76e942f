#include "tools/io/report.h"

#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "util/log.h"
#include "util/size.h"

namespace kiln::tools::io {

std::string cvtstr(double value)
{
    static const struct {
        double scale;
        const char* suffix;
    } units[] = {
        { 1152921504606846976.0, " EiB" },
        { 1125899906842624.0, " PiB" },
        { 1099511627776.0, " TiB" },
        { 1073741824.0, " GiB" },
        { 1048576.0, " MiB" },
        { 1024.0, " KiB" },
    };
    char buf[64];
    const char* suffix = " bytes";
    bool done = false;
    for (auto& u : units) {
        if (value >= u.scale) {
            std::snprintf(buf, sizeof buf, "%.3f", value / u.scale);
            suffix = u.suffix;
            done = true;
            break;
        }
    }
    if (!done)
        std::snprintf(buf, sizeof buf, "%f", value);
    std::string s = buf;
    auto trim = s.find(".000");
    if (trim != std::string::npos)
        s = s.substr(0, trim);
    return s + suffix;
}

std::string timestr(double seconds)
{
    unsigned whole = unsigned(seconds);
    double frac = seconds - whole;
    char buf[64];
    if (whole >= 3600)
        std::snprintf(buf, sizeof buf, "%u:%02u:%05.2f", whole / 3600, (whole / 60) % 60, (whole % 60) + frac);
    else if (whole >= 60)
        std::snprintf(buf, sizeof buf, "%02u:%05.2f", (whole / 60) % 60, (whole % 60) + frac);
    else
        std::snprintf(buf, sizeof buf, "%05.2f sec", (whole % 60) + frac);
    return buf;
}

void print_report(const char* op, double seconds, int64_t offset, int64_t count, int64_t total, int ops)
{
    if (seconds <= 0)
        seconds = 1e-9;
    std::printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n", op, total, count, offset);
    std::printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n", cvtstr(double(total)).c_str(), ops,
        timestr(seconds).c_str(), cvtstr(double(total) / seconds).c_str(), double(ops) / seconds);
}

void dump_buffer(const uint8_t* buf, int64_t offset, int64_t len)
{
    for (int64_t i = 0; i < len; i += 16) {
        std::printf("%08" PRIx64 ":  ", uint64_t(offset + i));
        int64_t n = std::min<int64_t>(16, len - i);
        for (int64_t j = 0; j < n; ++j)
            std::printf("%02x ", buf[i + j]);
        std::printf(" ");
        for (int64_t j = 0; j < n; ++j)
            std::putchar(std::isprint(buf[i + j]) && buf[i + j] < 0x7f ? buf[i + j] : '.');
        std::printf("\n");
    }
}

int64_t parse_number_arg(const std::string& text)
{
    if (!text.empty() && text[0] != '-') {
        auto v = parse_size(text);
        if (v)
            return int64_t(*v);
        if (v.error().message().find("too large") != std::string::npos) {
            std::printf("Parsing error: argument too large -- %s\n", text.c_str());
            return -1;
        }
    }
    std::printf("Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- %s\n", text.c_str());
    return -1;
}

void print_open_failure(const ImageRequest& request, const Error& error)
{
    std::fflush(stdout);
    if (request.image_opts)
        std::fprintf(stderr, "%s: can't open: %s\n", Log::program_name().c_str(), error.message().c_str());
    else
        std::fprintf(stderr, "%s: can't open device %s: %s\n", Log::program_name().c_str(), request.filename.c_str(),
            error.message().c_str());
}

} // namespace kiln::tools::io
