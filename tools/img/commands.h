// kiln-img's subcommands. Each takes argv starting at the subcommand name
// (argv[0] = "create") and returns the process exit code, as qemu-img's
// img_* functions do.
#pragma once

#include <cstdint>

#include "tools/common/env.h"

namespace kiln::tools {

int img_amend(ToolEnv& env, int argc, char** argv);
int img_bench(ToolEnv& env, int argc, char** argv);
int img_bitmap(ToolEnv& env, int argc, char** argv);
int img_check(ToolEnv& env, int argc, char** argv);
int img_commit(ToolEnv& env, int argc, char** argv);
int img_compare(ToolEnv& env, int argc, char** argv);
int img_convert(ToolEnv& env, int argc, char** argv);
int img_create(ToolEnv& env, int argc, char** argv);
int img_dd(ToolEnv& env, int argc, char** argv);
int img_info(ToolEnv& env, int argc, char** argv);
int img_map(ToolEnv& env, int argc, char** argv);
int img_measure(ToolEnv& env, int argc, char** argv);
// QEMU's qcow2 size for a fully allocated image (measure, tests).
uint64_t qcow2_fully_allocated_bytes(
    uint64_t virtual_bytes, uint64_t cluster_bytes, unsigned refcount_bits, bool extended_l2);
// Prints the full help (-h anywhere); returns 0.
int img_help(ToolEnv& env);
void print_img_help(ToolEnv* env);
void print_img_version();
int img_rebase(ToolEnv& env, int argc, char** argv);
int img_resize(ToolEnv& env, int argc, char** argv);
int img_snapshot(ToolEnv& env, int argc, char** argv);

// --object: adds the secret or reports the error; false on error.
bool handle_object_option(ToolEnv& env, const char* text);

// qemu-img's long option for --object, shared by most subcommands.
constexpr int k_opt_object = 256;
constexpr int k_opt_image_opts = 257;

} // namespace kiln::tools
