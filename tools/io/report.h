// qemu-io's number and timing output: "64 KiB", "00.00 sec", the
// "read N/N bytes at offset X" report, and the -v hex dump.
#pragma once

#include <cstdint>
#include <string>

#include "tools/common/env.h"
#include "util/result.h"

namespace kiln::tools::io {

// cvtstr: "%.3f <unit>" with ".000" trimmed ("64 KiB", "1.500 MiB", "40 bytes").
std::string cvtstr(double value);
// timestr: "00.00 sec", "01:02.50", "1:02:03.50".
std::string timestr(double seconds);
// Prints "<op> total/count bytes at offset N" and the rate line.
void print_report(const char* op, double seconds, int64_t offset, int64_t count, int64_t total, int ops);
// -v: "%08x:  xx xx ...  ascii" lines.
void dump_buffer(const uint8_t* buf, int64_t offset, int64_t len);
// "<prog>: can't open device NAME: why" ("can't open: why" for an
// --image-opts option string), as qemu-io reports a failed open.
void print_open_failure(const ImageRequest& request, const Error& error);
// cvtnum for command arguments; prints qemu-io's parse error and returns -1.
int64_t parse_number_arg(const std::string& text);

} // namespace kiln::tools::io
