// BlockContext: what the block layer needs from its host program (event
// loop, thread pool, secrets) and the entry points that open and create
// images. Passed explicitly; there is no global block state.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "block/node.h"
#include "util/event_loop.h"
#include "util/options.h"
#include "util/thread_pool.h"

namespace kiln::block {

// What a user names when opening an image: a file name plus options in
// QEMU's flattened form ("driver=qcow2", "file.locking=off",
// "backing.file.filename=...", "l2-cache-size=4M").
struct ImageSpec {
    std::string filename;
    std::string format; // empty: probe the content
    OptionList options;
    OpenFlags flags;
};

// One entry of `create -o help`.
struct CreateOptionInfo {
    std::string name;
    std::string type; // "str", "size", "bool", "num"
    std::string help;
    std::string default_value;
};

struct FormatDriver {
    std::string_view name;
    // Score 0..100 that `header` (first 2 KiB, may be shorter) is this format.
    int (*probe)(std::span<const uint8_t> header, const std::string& filename);
    // Opens the format on an already opened protocol node. Backing files are
    // opened through ctx.open_image so the whole chain shares the flags.
    Task<Result<std::unique_ptr<BlockNode>>> (*open)(BlockContext& ctx, std::unique_ptr<BlockNode> file,
                                                     const ImageSpec& spec);
    // Creates an image of `size_bytes` ("size" is not in options).
    Task<Result<void>> (*create)(BlockContext& ctx, const std::string& filename, uint64_t size_bytes,
                                 const OptionList& options);
    std::vector<CreateOptionInfo> (*create_options)();
};

// A backing file name as recorded in `image` resolved the way QEMU does:
// absolute names and protocol names ("nbd:...", "json:...") stay as they
// are; relative names are relative to the directory of `image`.
std::string resolve_backing_path(const std::string& image, const std::string& backing);

// The three lines qemu-img prints when probing guessed raw for `filename`
// (no trailing newline).
std::string probed_raw_warning(const std::string& filename);

class IoEngine;

class BlockContext {
public:
    BlockContext(EventLoop& loop, ThreadPool& pool);

    EventLoop& loop() const { return m_loop; }
    ThreadPool& pool() const { return m_pool; }

    // --object secret,id=ID,data=...|file=...
    void add_secret(std::string id, std::string data) { m_secrets[std::move(id)] = std::move(data); }
    Result<std::string> secret(const std::string& id) const;

    // Formats Kiln knows, in probe order (an explicit list, see registry.cpp).
    const std::vector<const FormatDriver*>& formats() const { return m_formats; }
    const FormatDriver* find_format(std::string_view name) const;
    // Adds a format after the built-in ones (tests, experiments); `driver`
    // must outlive the context.
    void add_format(const FormatDriver* driver) { m_formats.push_back(driver); }

    // Opens the protocol node for a host file (driver "file").
    Task<Result<std::unique_ptr<BlockNode>>> open_file(const std::string& filename, const OptionList& options,
                                                       const OpenFlags& flags);
    // Opens file + format (probing when spec.format is empty) + backing chain.
    Task<Result<std::unique_ptr<BlockNode>>> open_image(const ImageSpec& spec);
    // Creates an image with the named format.
    Task<Result<void>> create_image(const std::string& format, const std::string& filename, uint64_t size_bytes,
                                    const OptionList& options);
    // Probes a file's format: "raw" when nothing matches (the caller warns).
    Task<Result<std::string>> probe_format(const std::string& filename, const OpenFlags& flags);

    // Chain depth guard shared by nested open_image calls (backing loops).
    int& open_depth() { return m_open_depth; }
    static constexpr int k_max_open_depth = 1000;

    // Probes an opened protocol node (its first 2 KiB): the best-scoring
    // format, or "raw" when nothing matches.
    Task<Result<std::string>> probe_node(BlockNode& file);
    // Files that open_image opened as raw because probing guessed it, since
    // the last call; callers print probed_raw_warning() for each.
    std::vector<std::string> take_probed_raw() { return std::exchange(m_probed_raw, {}); }

    // Creates (or truncates) a host file of size_bytes as the `file`
    // protocol's create does, taking QEMU's write+resize locks while it
    // works. Format drivers call this, then open_file() the result.
    Task<Result<void>> create_file(const std::string& filename, uint64_t size_bytes, PreallocMode prealloc,
                                   const OptionList& file_options = {});

    // The `threads` I/O engine all files of this context share, so the
    // worker count is bounded per context (as QEMU's pool is per
    // AioContext) rather than per file. Created on first use.
    std::shared_ptr<IoEngine> shared_threads_engine();

private:
    EventLoop& m_loop;
    ThreadPool& m_pool;
    std::map<std::string, std::string> m_secrets;
    std::vector<const FormatDriver*> m_formats;
    int m_open_depth = 0;
    std::vector<std::string> m_probed_raw;
    // (st_dev, st_ino) of the images whose open is in progress, outermost
    // first: a backing file equal to one of them is a loop.
    std::vector<std::pair<uint64_t, uint64_t>> m_open_chain;
    std::shared_ptr<IoEngine> m_threads_engine;
};

} // namespace kiln::block
