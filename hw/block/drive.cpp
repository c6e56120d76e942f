#include "hw/block/drive.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>

#include "util/log.h"

namespace kiln::hw {

const char* block_error_action_name(BlockErrorAction a)
{
    switch (a) {
    case BlockErrorAction::Report:
        return "report";
    case BlockErrorAction::Ignore:
        return "ignore";
    case BlockErrorAction::Stop:
        return "stop";
    case BlockErrorAction::StopOnEnospc:
        return "enospc";
    }
    return "?";
}

namespace {

// Format options the drivers read; anything else undotted is refused with
// QEMU's message once the format is known.
bool format_accepts(std::string_view format, const std::string& key)
{
    static const std::set<std::string> qcow2 = { "cache-size", "l2-cache-size", "refcount-cache-size",
        "l2-cache-entry-size", "lazy-refcounts", "cache-clean-interval", "overlap-check", "pass-discard-request",
        "pass-discard-snapshot", "pass-discard-other", "discard-no-unref" };
    static const std::set<std::string> raw = { "offset", "size" };
    if (key.find('.') != std::string::npos || key == "driver")
        return true;
    if (format == "qcow2")
        return qcow2.count(key) != 0;
    if (format == "raw")
        return raw.count(key) != 0;
    return false;
}

std::string temp_dir()
{
    const char* t = getenv("TMPDIR");
    return t && *t ? t : "/var/tmp";
}

} // namespace

Drive::~Drive() = default;

std::unique_ptr<Drive> Drive::from_node(
    block::BlockContext& ctx, const DriveConfig& cfg, std::unique_ptr<block::BlockNode> root)
{
    std::unique_ptr<Drive> d(new Drive(ctx, cfg));
    bool writable = !cfg.read_only && !root->read_only();
    d->m_backend = std::make_unique<block::BlockBackend>(
        ctx.loop(), std::move(root), writable ? block::BackendAccess::ReadWrite : block::BackendAccess::ReadOnly);
    ++d->m_medium_generation;
    return d;
}

Task<Result<std::unique_ptr<Drive>>> Drive::open(block::BlockContext& ctx, const DriveConfig& cfg)
{
    std::unique_ptr<Drive> d(new Drive(ctx, cfg));
    if (!cfg.file.empty())
        CO_TRY(co_await d->open_medium(cfg.file, cfg.format));
    co_return std::move(d);
}

block::ImageSpec Drive::image_spec(const std::string& filename, const std::string& format, bool writable) const
{
    block::ImageSpec spec;
    spec.filename = filename;
    spec.format = format;
    spec.options = m_config.block_options;
    spec.flags.read_write = writable;
    spec.flags.cache = m_config.cache;
    spec.flags.aio = m_config.aio;
    return spec;
}

Task<Result<std::unique_ptr<block::BlockNode>>> Drive::open_snapshot_overlay(
    const std::string& filename, const std::string& format)
{
    // The base is opened read-only through the overlay's backing link; we
    // only need its size and format first.
    auto base_node = CO_TRY(co_await m_ctx.open_image(image_spec(filename, format, false)));
    uint64_t size = base_node->size_bytes();
    std::string base_format(base_node->driver_name());
    char resolved[PATH_MAX];
    std::string base_path = realpath(filename.c_str(), resolved) ? std::string(resolved) : filename;
    CO_TRY(co_await base_node->close());
    base_node.reset();

    std::string tmpl = temp_dir() + "/kiln-snapshot.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = mkstemp(buf.data());
    if (fd < 0)
        co_return Error::from_errno(errno, "Could not create temporary overlay in '" + temp_dir() + "'");
    ::close(fd);
    std::string overlay(buf.data());
    OptionList create_opts;
    create_opts.set("backing_file", base_path);
    create_opts.set("backing_fmt", base_format);
    auto created = co_await m_ctx.create_image("qcow2", overlay, size, create_opts);
    if (!created) {
        ::unlink(overlay.c_str());
        co_return std::move(created).error();
    }
    block::ImageSpec top;
    top.filename = overlay;
    top.format = "qcow2";
    top.flags.read_write = true;
    top.flags.cache = block::CacheMode::Unsafe; // a throw-away file
    // ...but the user's image below keeps the drive's cache mode, so a
    // monitor `commit` into it is flushed as the user asked.
    top.flags.backing_cache = m_config.cache;
    top.flags.aio = m_config.aio;
    auto node = co_await m_ctx.open_image(top);
    // Deleted now: the open file lives on until close, and nothing is left
    // behind even if Kiln is killed.
    ::unlink(overlay.c_str());
    co_return node;
}

Task<Result<void>> Drive::open_medium(const std::string& filename, const std::string& format)
{
    std::unique_ptr<block::BlockNode> root;
    bool writable = !m_config.read_only;
    if (m_config.snapshot && writable) {
        root = CO_TRY(co_await open_snapshot_overlay(filename, format));
    } else {
        root = CO_TRY(co_await m_ctx.open_image(image_spec(filename, format, writable)));
        for (const std::string& raw : m_ctx.take_probed_raw())
            Log::warning(block::probed_raw_warning(raw));
    }
    for (const auto& [k, v] : m_config.block_options.entries()) {
        if (!format_accepts(root->driver_name(), k)) {
            std::string fmt(root->driver_name());
            (void)co_await root->close();
            co_return Error::invalid("Block format '" + fmt + "' does not support the option '" + k + "'");
        }
    }
    m_backend = std::make_unique<block::BlockBackend>(
        m_ctx.loop(), std::move(root), writable ? block::BackendAccess::ReadWrite : block::BackendAccess::ReadOnly);
    // As QEMU's guest devices do: other processes may read but not write
    // the image (nor the backing chain below it), even when this drive
    // only reads. Fails with QEMU's lock message if someone writes already.
    auto shared = m_backend->apply_device_sharing(block::BlockBackend::ShareWrite::No);
    if (!shared) {
        (void)co_await m_backend->close();
        m_backend.reset();
        co_return std::move(shared).error();
    }
    ++m_medium_generation;
    co_return ok();
}

Task<Result<void>> Drive::read(uint64_t offset, block::QIov qiov)
{
    if (!has_medium())
        co_return Error(ErrorKind::NotFound, "No medium found", ENOMEDIUM);
    co_return co_await m_backend->read(offset, std::move(qiov));
}

Task<Result<void>> Drive::write(uint64_t offset, block::QIov qiov, block::RequestFlags flags)
{
    if (!has_medium())
        co_return Error(ErrorKind::NotFound, "No medium found", ENOMEDIUM);
    if (m_config.detect_zeroes != DetectZeroes::Off && qiov.is_zero()) {
        bool unmap = m_config.detect_zeroes == DetectZeroes::Unmap;
        co_return co_await m_backend->write_zeroes(
            offset, qiov.size(), unmap ? block::RequestFlags::MayUnmap : block::RequestFlags::None);
    }
    co_return co_await m_backend->write(offset, std::move(qiov), flags);
}

Task<Result<void>> Drive::write_zeroes(uint64_t offset, uint64_t bytes, bool may_unmap)
{
    if (!has_medium())
        co_return Error(ErrorKind::NotFound, "No medium found", ENOMEDIUM);
    bool unmap = may_unmap && m_config.discard == DiscardMode::Unmap;
    co_return co_await m_backend->write_zeroes(
        offset, bytes, unmap ? block::RequestFlags::MayUnmap : block::RequestFlags::None);
}

Task<Result<void>> Drive::discard(uint64_t offset, uint64_t bytes)
{
    if (!has_medium())
        co_return Error(ErrorKind::NotFound, "No medium found", ENOMEDIUM);
    if (m_config.discard == DiscardMode::Ignore) {
        if (m_backend->read_only())
            co_return Error(ErrorKind::PermissionDenied, "Block node is read-only", EPERM);
        co_return ok();
    }
    co_return co_await m_backend->discard(offset, bytes);
}

Task<Result<void>> Drive::flush()
{
    if (!has_medium())
        co_return ok();
    co_return co_await m_backend->flush();
}

ErrorOutcome Drive::handle_error(IoDirection dir, const Error& error, std::function<void()> retry)
{
    BlockErrorAction action = dir == IoDirection::Read ? m_config.rerror : m_config.werror;
    bool nospace = error.errno_value() == ENOSPC || error.kind() == ErrorKind::NoSpace;
    auto passed = [&](ErrorOutcome outcome) {
        if (m_error_host)
            m_error_host->block_error_passed(m_config.id, dir, outcome == ErrorOutcome::Ignore, nospace, error.message());
        return outcome;
    };
    switch (action) {
    case BlockErrorAction::Ignore:
        return passed(ErrorOutcome::Ignore);
    case BlockErrorAction::Report:
        return passed(ErrorOutcome::Report);
    case BlockErrorAction::StopOnEnospc:
        if (!nospace)
            return passed(ErrorOutcome::Report);
        break;
    case BlockErrorAction::Stop:
        break;
    }
    if (!m_error_host)
        return ErrorOutcome::Report;
    // Requests in flight fail together when the disk fills: the VM stops
    // (and Kiln says why) once; every failed request is retried on resume.
    bool first = m_retries.empty();
    m_retries.push_back(std::move(retry));
    if (!first)
        return ErrorOutcome::Stopped;
    m_error_host->block_error_stop(m_config.id, dir, nospace,
        "drive '" + m_config.id + "': " + (dir == IoDirection::Read ? "read" : "write") + " error: " + error.message()
            + " (" + (dir == IoDirection::Read ? "rerror" : "werror") + "=" + block_error_action_name(action)
            + ": VM paused; 'cont' retries the request)");
    return ErrorOutcome::Stopped;
}

void Drive::resume()
{
    auto retries = std::exchange(m_retries, {});
    for (auto& r : retries)
        r();
}

Task<Result<void>> Drive::eject()
{
    if (!m_backend)
        co_return ok();
    auto r = co_await m_backend->close();
    m_backend.reset();
    ++m_medium_generation;
    co_return r;
}

Task<Result<void>> Drive::change_medium(const std::string& filename, const std::string& format)
{
    CO_TRY(co_await eject());
    co_return co_await open_medium(filename, format);
}

Task<Result<void>> Drive::close()
{
    if (!m_backend)
        co_return ok();
    auto r = co_await m_backend->close();
    m_backend.reset();
    co_return r;
}

} // namespace kiln::hw
