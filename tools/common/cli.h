// Command-line plumbing shared by kiln-img and kiln-io: error lines in
// qemu-img's wording ("kiln-img: ..."), getopt error handling, quiet
// printing, and the --object / size / cache option parsers.
#pragma once

#include <getopt.h>

#include <cstdarg>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "block/context.h"
#include "block/types.h"
#include "util/result.h"

namespace kiln::tools {

// "prog: message" on stderr (error_report).
void report_error(std::string_view message);
// "prog: warning: message" on stderr (warn_report).
void report_warning(std::string_view message);
// error_report + "Try 'prog --help' for more information"; returns 1.
int error_exit(std::string_view message);
// getopt's ':' and '?' cases, worded as qemu-img does; return 1.
int missing_argument(const char* option);
int unrecognized_option(const char* option);
// Handles getopt_long's ':' / '?' results for the option just parsed.
int getopt_failure(int c, char** argv);

// printf to stdout unless quiet.
void qprintf(bool quiet, const char* format, ...) __attribute__((format(printf, 2, 3)));

// --object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64]
Result<void> add_object(block::BlockContext& ctx, const std::string& text);

// Sizes as qemu-img's command line takes them (no sign).
std::optional<uint64_t> parse_image_size(const std::string& text);
// qemu-img's two-line complaint about a bad size; returns 1.
int report_invalid_image_size();
// Cache mode for -t/-T ("Invalid cache option: x").
Result<block::CacheMode> parse_cache_option(const std::string& text);

// Output format for --output.
enum class OutputFormat { Human, Json };
Result<OutputFormat> parse_output_format(const std::string& text);

// strtoll with qemu's checks (full string, in range).
Result<int64_t> parse_int(const std::string& text, int64_t min, int64_t max);

} // namespace kiln::tools
