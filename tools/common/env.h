// ToolEnv: the event loop, thread pool and BlockContext a command-line
// tool runs the block layer on, and the way it opens images the way
// qemu-img does (probing with the raw warning, --image-opts, -U, caches).
#pragma once

#include <memory>
#include <string>

#include "block/context.h"
#include "util/event_loop.h"
#include "util/thread_pool.h"

namespace kiln::tools {

class ToolEnv {
public:
    static Result<std::unique_ptr<ToolEnv>> create();

    EventLoop& loop() { return *m_loop; }
    ThreadPool& pool() { return *m_pool; }
    block::BlockContext& ctx() { return *m_ctx; }

    template<typename T>
    T run(Task<T> task)
    {
        return m_loop->run_until_complete(std::move(task));
    }

private:
    std::unique_ptr<EventLoop> m_loop;
    std::unique_ptr<ThreadPool> m_pool;
    std::unique_ptr<block::BlockContext> m_ctx;
};

// How a tool names one image on its command line.
struct ImageRequest {
    std::string filename;  // a file name, or an option string with image_opts
    std::string format;    // -f; empty: probe
    bool image_opts = false;
    block::OpenFlags flags;
    // Print the raw-probing warning for write access (qemu-img does).
    bool warn_raw_probe = true;
    // Prefix errors with "Could not open 'NAME': " (qemu-img does,
    // qemu-io reports the block layer's message as is).
    bool wrap_errors = true;
};

// An opened image: the top node and what the user called it.
struct OpenedImage {
    std::unique_ptr<block::BlockNode> node;
    std::string filename; // the name to print ("image: ...")
    std::string format;   // the format actually used
};

// Opens as qemu-img's img_open does; errors read
// "Could not open 'NAME': <reason>".
Task<Result<OpenedImage>> open_tool_image(block::BlockContext& ctx, ImageRequest request);

// Turns an --image-opts string into an ImageSpec (driver=, file.filename=).
Result<block::ImageSpec> image_spec_from_options(const std::string& text, const block::OpenFlags& flags);

// Closes the node (flush, clear dirty) and reports a failure as qemu-img would.
Task<Result<void>> close_image(OpenedImage& image);

} // namespace kiln::tools
