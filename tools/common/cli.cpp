#include "tools/common/cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/log.h"
#include "util/size.h"

namespace kiln::tools {

// stdout is not flushed first: qemu-img's stdio buffering decides the
// interleaving scripts see when both streams go to one pipe.
void report_error(std::string_view message)
{
    std::fprintf(stderr, "%s: %.*s\n", Log::program_name().c_str(), int(message.size()), message.data());
}

void report_warning(std::string_view message)
{
    std::fprintf(stderr, "%s: warning: %.*s\n", Log::program_name().c_str(), int(message.size()), message.data());
}

int error_exit(std::string_view message)
{
    report_error(message);
    std::fprintf(stderr, "Try '%s --help' for more information\n", Log::program_name().c_str());
    return 1;
}

int missing_argument(const char* option)
{
    return error_exit(std::string("missing argument for option '") + option + "'");
}

int unrecognized_option(const char* option)
{
    return error_exit(std::string("unrecognized option '") + option + "'");
}

int getopt_failure(int c, char** argv)
{
    if (c == ':')
        return missing_argument(argv[optind - 1]);
    return unrecognized_option(argv[optind - 1]);
}

void qprintf(bool quiet, const char* format, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, format);
    std::vprintf(format, ap);
    va_end(ap);
}

static Result<std::string> base64_decode(const std::string& in)
{
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z')
            return c - 'A';
        if (c >= 'a' && c <= 'z')
            return c - 'a' + 26;
        if (c >= '0' && c <= '9')
            return c - '0' + 52;
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
        return -1;
    };
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        if (c == '=' || c == '\n')
            continue;
        int v = value(c);
        if (v < 0)
            return Error::invalid("Unable to decode secret data as base64");
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xff);
        }
    }
    return out;
}

Result<void> add_object(block::BlockContext& ctx, const std::string& text)
{
    OptionList opts = TRY(OptionList::parse(text, "qom-type"));
    auto type = opts.get("qom-type");
    if (!type)
        return Error::invalid("Parameter 'qom-type' is missing");
    if (*type != "secret")
        return Error::invalid("Invalid parameter type for 'qom-type', expected: an object type Kiln knows (secret)");
    auto id = opts.get("id");
    if (!id)
        return Error::invalid("Parameter 'id' is missing");
    auto data = opts.get("data");
    auto file = opts.get("file");
    if (data && file)
        return Error::invalid("'data' and 'file' are mutually exclusive");
    std::string value;
    if (data) {
        value = *data;
    } else if (file) {
        std::ifstream in(*file, std::ios::binary);
        if (!in)
            return Error::from_errno(errno, "Unable to read " + *file);
        std::stringstream ss;
        ss << in.rdbuf();
        value = ss.str();
    } else {
        return Error::invalid("Either 'file' or 'data' must be provided");
    }
    auto format = opts.get("format").value_or("raw");
    if (format == "base64")
        value = TRY(base64_decode(value));
    else if (format != "raw")
        return Error::invalid("Parameter 'format' does not accept value '" + format + "'");
    ctx.add_secret(*id, value);
    return ok();
}

std::optional<uint64_t> parse_image_size(const std::string& text)
{
    if (text.empty() || text[0] == '-')
        return std::nullopt;
    auto size = parse_size(text);
    if (!size)
        return std::nullopt;
    return *size;
}

int report_invalid_image_size()
{
    report_error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
    report_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
    return 1;
}

Result<block::CacheMode> parse_cache_option(const std::string& text)
{
    auto mode = block::parse_cache_mode(text);
    if (!mode)
        return Error::invalid("Invalid cache option: " + text);
    return *mode;
}

Result<OutputFormat> parse_output_format(const std::string& text)
{
    if (text == "json")
        return OutputFormat::Json;
    if (text == "human")
        return OutputFormat::Human;
    return Error::invalid("--output must be used with human or json as argument.");
}

Result<int64_t> parse_int(const std::string& text, int64_t min, int64_t max)
{
    if (text.empty())
        return Error::invalid("Invalid number: ''");
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 0);
    if (errno || *end || v < min || v > max)
        return Error::invalid("Invalid number: '" + text + "'");
    return int64_t(v);
}

} // namespace kiln::tools
