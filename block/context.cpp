// BlockContext: opening (with format probing and backing-loop guards) and
// creating images, and the secrets store.
#include "block/context.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <sys/stat.h>

#include "block/file/file_node.h"
#include "block/file/lock.h"
#include "block/raw/raw_node.h"
#include "block/registry.h"

namespace kiln::block {

std::string resolve_backing_path(const std::string& image, const std::string& backing)
{
    if (backing.empty() || backing[0] == '/')
        return backing;
    // "proto:rest" names a protocol (json:, nbd:, ...) unless a '/' comes first.
    auto colon = backing.find(':');
    if (colon != std::string::npos && colon > 0 && backing.find('/') > colon)
        return backing;
    auto slash = image.rfind('/');
    if (slash == std::string::npos)
        return backing;
    return image.substr(0, slash + 1) + backing;
}

std::string probed_raw_warning(const std::string& filename)
{
    return "WARNING: Image format was not specified for '" + filename
        + "' and probing guessed raw.\n"
          "         Automatically detecting the format is dangerous for raw images, write operations on block 0 "
          "will be restricted.\n"
          "         Specify the 'raw' format explicitly to remove the restrictions.";
}

BlockContext::BlockContext(EventLoop& loop, ThreadPool& pool)
    : m_loop(loop)
    , m_pool(pool)
    , m_formats(all_format_drivers())
{
}

std::shared_ptr<IoEngine> BlockContext::shared_threads_engine()
{
    if (!m_threads_engine)
        m_threads_engine = make_threads_engine(m_loop);
    return m_threads_engine;
}

Result<std::string> BlockContext::secret(const std::string& id) const
{
    auto it = m_secrets.find(id);
    if (it == m_secrets.end())
        return Error::not_found("No secret with id '" + id + "'");
    return it->second;
}

const FormatDriver* BlockContext::find_format(std::string_view name) const
{
    for (auto* driver : m_formats)
        if (driver->name == name)
            return driver;
    return nullptr;
}

Task<Result<std::unique_ptr<BlockNode>>> BlockContext::open_file(
    const std::string& filename, const OptionList& options, const OpenFlags& flags)
{
    auto node = CO_TRY(co_await FileNode::open(*this, filename, options, flags));
    co_return std::unique_ptr<BlockNode>(std::move(node));
}

Task<Result<std::string>> BlockContext::probe_node(BlockNode& file)
{
    constexpr uint64_t k_probe_bytes = 2048;
    std::vector<uint8_t> header(std::min(k_probe_bytes, file.size_bytes()));
    if (!header.empty())
        CO_TRY(co_await file.preadv(0, QIov(header.data(), header.size())));
    const FormatDriver* best = nullptr;
    int best_score = 0;
    for (auto* driver : m_formats) {
        if (!driver->probe)
            continue;
        int score = driver->probe(header, file.filename());
        if (score > best_score) {
            best = driver;
            best_score = score;
        }
    }
    co_return std::string(best ? best->name : "raw");
}

Task<Result<std::string>> BlockContext::probe_format(const std::string& filename, const OpenFlags& flags)
{
    // Probing only reads; it must not take (or trip over) image locks.
    OpenFlags probe_flags = flags;
    probe_flags.read_write = false;
    probe_flags.force_share = true;
    OptionList options;
    options.set("locking", "off");
    auto file = CO_TRY(co_await open_file(filename, options, probe_flags));
    co_return co_await probe_node(*file);
}

// Permissions QEMU's format drivers ask of their `file` child. raw passes
// its user's through; every other format stores metadata in the file and
// cannot let anyone else write or resize it (unless -U).
static Result<void> narrow_for_format(BlockNode& file, std::string_view format, const OpenFlags& flags)
{
    auto* node = dynamic_cast<FileNode*>(&file);
    if (!node || format == "raw")
        return ok();
    uint64_t perm = node->permissions();
    uint64_t shared = node->shared_permissions();
    if (flags.read_write)
        perm |= k_perm_resize;
    if (!flags.force_share)
        shared &= ~uint64_t(k_perm_write | k_perm_resize);
    return node->set_permissions(perm, shared);
}

Task<Result<std::unique_ptr<BlockNode>>> BlockContext::open_image(const ImageSpec& spec)
{
    std::string format = spec.format;
    if (format.empty())
        format = spec.options.get("driver").value_or("");
    const FormatDriver* driver = nullptr;
    if (!format.empty()) {
        driver = find_format(format);
        if (!driver)
            co_return Error::invalid("Unknown driver '" + format + "'");
    }
    OptionList file_options = spec.options.subtree("file");
    std::string filename = file_options.get("filename").value_or(spec.filename);
    file_options.remove("filename");
    // Cache settings given on the format node are inherited by its file,
    // as QEMU's BDRV_O_NOCACHE/NO_FLUSH flags are.
    for (const char* key : { "cache.direct", "cache.no-flush" })
        if (auto v = spec.options.get(key); v && !file_options.has(key))
            file_options.set(key, *v);

    if (m_open_depth >= k_max_open_depth)
        co_return Error::invalid(
            "Backing chain of '" + filename + "' is deeper than " + std::to_string(k_max_open_depth) + " images");
    struct stat st;
    std::pair<uint64_t, uint64_t> id { 0, 0 };
    if (::stat(filename.c_str(), &st) == 0) {
        id = { uint64_t(st.st_dev), uint64_t(st.st_ino) };
        for (auto& open : m_open_chain)
            if (open == id)
                co_return Error::invalid("Backing file '" + filename + "' creates an infinite loop.");
    }

    auto file = CO_TRY(co_await open_file(filename, file_options, spec.flags));
    bool probed_raw = false;
    if (!driver) {
        format = CO_TRY(co_await probe_node(*file));
        driver = find_format(format);
        if (format == "raw") {
            m_probed_raw.push_back(filename);
            probed_raw = true;
        }
    }
    CO_TRY(narrow_for_format(*file, format, spec.flags));

    ImageSpec format_spec = spec;
    format_spec.format = format;
    format_spec.filename = filename;
    m_open_chain.push_back(id);
    ++m_open_depth;
    auto node = co_await driver->open(*this, std::move(file), format_spec);
    --m_open_depth;
    m_open_chain.pop_back();
    if (node && probed_raw)
        if (auto* raw = dynamic_cast<RawNode*>(node.value().get()))
            raw->set_probed(true);
    co_return node;
}

Task<Result<void>> BlockContext::create_image(
    const std::string& format, const std::string& filename, uint64_t size_bytes, const OptionList& options)
{
    const FormatDriver* driver = find_format(format);
    if (!driver)
        co_return Error::invalid("Unknown driver '" + format + "'");
    co_return co_await driver->create(*this, filename, size_bytes, options);
}

Task<Result<void>> BlockContext::create_file(
    const std::string& filename, uint64_t size_bytes, PreallocMode prealloc, const OptionList& file_options)
{
    if (prealloc == PreallocMode::Metadata)
        co_return Error::not_supported("Unsupported preallocation mode: metadata");
    int fd;
    do {
        fd = ::open(filename.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        co_return Error::from_errno(errno, "Could not create '" + filename + "'");
    // As QEMU: hold write+resize and refuse to share resize while the file
    // is emptied, so an image in use elsewhere is not destroyed.
    auto locking = file_options.get("locking").value_or("auto");
    if (locking != "off") {
        uint64_t held_perm = 0, held_unshared = 0;
        uint64_t perm = k_perm_write | k_perm_resize;
        uint64_t shared = k_perm_all & ~uint64_t(k_perm_resize);
        auto r = apply_lock_bytes(fd, perm, shared, held_perm, held_unshared, filename);
        if (r)
            r = check_lock_bytes(fd, perm, shared, filename);
        if (!r) {
            ::close(fd);
            co_return std::move(r).error();
        }
    }
    if (::ftruncate(fd, 0) != 0) {
        int err = errno;
        ::close(fd);
        co_return Error::from_errno(err, "Could not resize file");
    }
    // Size the file through a node of its own; `fd` keeps holding the
    // locks until the work is done.
    OpenFlags flags;
    flags.read_write = true;
    OptionList options = file_options;
    options.set("locking", "off");
    auto node = co_await FileNode::open(*this, filename, options, flags);
    Result<void> r = ok();
    if (!node)
        r = std::move(node).error();
    if (r)
        r = co_await node.value()->truncate(size_bytes, prealloc, false);
    if (r)
        r = co_await node.value()->close();
    ::close(fd);
    co_return r;
}

} // namespace kiln::block
