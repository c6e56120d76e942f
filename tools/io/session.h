// kiln-io's state: the open image, its open settings, outstanding aio
// requests, and the command table that works on them.
#pragma once

#include <string>
#include <vector>

#include "tools/common/env.h"
#include "util/co_sync.h"

namespace kiln::tools::io {

class IoSession;

// A command gets its words (args[0] = command name) and returns 0 or a
// negative errno-style failure, as qemu-io's command functions do.
using CommandFn = Task<int> (*)(IoSession&, std::vector<std::string>&);

struct IoCommand {
    const char* name;
    const char* alt; // short alias or nullptr
    CommandFn fn;
    int min_args;
    int max_args; // -1: unlimited
    bool needs_image;
    const char* args_help;
    const char* oneline;
};

const std::vector<IoCommand>& io_commands();

class IoSession {
public:
    IoSession(ToolEnv& env) : m_env(env), m_aio(env.loop()) {}

    ToolEnv& env() { return m_env; }
    block::BlockNode* node() { return m_image.node.get(); }
    OpenedImage& image() { return m_image; }
    CoWaitGroup& aio() { return m_aio; }
    bool quit = false;
    bool aio_failed = false; // an aio request failed (exit status)

    // Runs one command line; false if the command failed.
    Task<bool> run_line(const std::string& line);
    Task<Result<void>> open(ImageRequest request);
    Task<void> close();

private:
    ToolEnv& m_env;
    OpenedImage m_image;
    CoWaitGroup m_aio;
};

// Splits a command line into words (qemu-io splits on whitespace).
std::vector<std::string> split_words(const std::string& line);

} // namespace kiln::tools::io
