// One getopt loop for every subcommand: the options most of them share
// (-f, -q, -U, -T, --object, --image-opts, --output, -h) are handled here,
// the rest by the subcommand's callback, all with qemu-img's error wording.
#pragma once

#include <getopt.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "block/types.h"
#include "tools/common/cli.h"
#include "tools/common/env.h"

namespace kiln::tools {

struct CommonOptions {
    std::string format;                         // -f
    bool image_opts = false;                    // --image-opts
    bool force_share = false;                   // -U
    bool quiet = false;                         // -q
    OutputFormat output = OutputFormat::Human;  // --output, checked by one_filename()
    std::string output_text = "human";
    block::CacheMode src_cache = block::CacheMode::Writeback; // -T
};

// Long options a subcommand may take besides "help".
enum LongOptionSet : unsigned {
    k_long_object = 1u << 0,
    k_long_image_opts = 1u << 1,
    k_long_force_share = 1u << 2,
    k_long_format = 1u << 3,
    k_long_output = 1u << 4,
    k_long_standard = k_long_object | k_long_image_opts | k_long_force_share,
};

// Returned by callbacks and parse_options: keep going.
constexpr int k_parse_continue = -1;

// Parses argv (argv[0] = the subcommand). `on_option(c)` gets every option
// not handled here (optarg is set) and returns k_parse_continue or an exit
// code. Returns k_parse_continue when all options were read (optind then
// indexes the first operand), otherwise the exit code to return.
int parse_options(ToolEnv& env, int argc, char** argv, const char* short_options, unsigned long_sets,
                  std::vector<option> extra_long, CommonOptions& common, const std::function<int(int)>& on_option);

// The usual single operand ("Expecting one image file name" otherwise),
// then --output's value, in qemu-img's order of complaints.
std::optional<std::string> one_filename(int argc, char** argv, CommonOptions& common);

// An ImageRequest from the shared options.
ImageRequest request_from(const CommonOptions& common, const std::string& filename);

// Opens for a subcommand; prints the error and returns nullopt on failure.
Task<std::optional<OpenedImage>> open_or_report(ToolEnv& env, ImageRequest request);

// Closes the image; a failure to close turns a success (ret 0) into 1.
Task<int> close_with_status(OpenedImage& image, int ret);

} // namespace kiln::tools
