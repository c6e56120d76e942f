// Drive: the glue from a DriveConfig to a BlockBackend. Opens the image
// (with a temporary qcow2 overlay for snapshot=on), applies the drive's
// policies to device requests (discard=, detect-zeroes=, werror=/rerror=),
// and lets a CD-ROM change or lose its medium.
//
// Error policy: a failed request asks handle_error(); with action Stop the
// drive tells its BlockErrorHost (the machine pauses the VM and says why)
// and keeps the device's retry callback, which resume() runs.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "block/backend.h"
#include "block/context.h"
#include "hw/block/drive_config.h"

namespace kiln::hw {

enum class ErrorOutcome { Report, Ignore, Stopped };
enum class IoDirection { Read, Write };

// Implemented by the machine: stop the VM because a disk request failed,
// and hear of failures the drive's rerror/werror passes on or ignores
// (QEMU sends BLOCK_IO_ERROR for those too).
class BlockErrorHost {
public:
    virtual ~BlockErrorHost() = default;
    virtual void block_error_stop(
        const std::string& drive_id, IoDirection dir, bool nospace, const std::string& reason) = 0;
    virtual void block_error_passed(const std::string& /*drive_id*/, IoDirection /*dir*/, bool /*ignored*/,
        bool /*nospace*/, const std::string& /*reason*/)
    {
    }
};

class Drive {
public:
    // Opens cfg.file (nothing for an empty CD-ROM drive). Lock conflicts and
    // missing files come back with the block layer's (QEMU's) message.
    static Task<Result<std::unique_ptr<Drive>>> open(block::BlockContext& ctx, const DriveConfig& cfg);
    // A drive over an already opened node (tests, fault injection).
    static std::unique_ptr<Drive> from_node(
        block::BlockContext& ctx, const DriveConfig& cfg, std::unique_ptr<block::BlockNode> root);
    ~Drive();
    Drive(const Drive&) = delete;
    Drive& operator=(const Drive&) = delete;

    const DriveConfig& config() const { return m_config; }
    const std::string& id() const { return m_config.id; }
    block::BlockBackend* backend() const { return m_backend.get(); }
    bool has_medium() const { return m_backend && m_backend->root(); }
    uint64_t size_bytes() const { return has_medium() ? m_backend->size_bytes() : 0; }
    bool read_only() const { return !has_medium() || m_backend->read_only(); }
    EventLoop& loop() const { return m_ctx.loop(); }

    // Device requests with the drive's policies applied.
    Task<Result<void>> read(uint64_t offset, block::QIov qiov);
    Task<Result<void>> write(uint64_t offset, block::QIov qiov, block::RequestFlags flags = block::RequestFlags::None);
    Task<Result<void>> write_zeroes(uint64_t offset, uint64_t bytes, bool may_unmap);
    // discard=ignore: succeeds without doing anything.
    Task<Result<void>> discard(uint64_t offset, uint64_t bytes);
    Task<Result<void>> flush();

    // Decides what a failed request does. `retry` is kept when the VM stops.
    ErrorOutcome handle_error(IoDirection dir, const Error& error, std::function<void()> retry);
    void set_error_host(BlockErrorHost* host) { m_error_host = host; }
    // The VM continues: re-issues the requests that stopped it.
    void resume();
    size_t stopped_requests() const { return m_retries.size(); }

    // Removable media (CD-ROM): eject drops the medium; change opens a new one.
    Task<Result<void>> eject();
    Task<Result<void>> change_medium(const std::string& filename, const std::string& format);
    // Bumped on every medium change, so a device notices (unit attention).
    unsigned medium_generation() const { return m_medium_generation; }

    // Waits for requests in flight and closes the image (and deletes a
    // snapshot=on overlay, which was unlinked at open already).
    Task<Result<void>> close();

private:
    Drive(block::BlockContext& ctx, DriveConfig cfg)
        : m_ctx(ctx)
        , m_config(std::move(cfg))
    {
    }
    block::ImageSpec image_spec(const std::string& filename, const std::string& format, bool writable) const;
    Task<Result<void>> open_medium(const std::string& filename, const std::string& format);
    Task<Result<std::unique_ptr<block::BlockNode>>> open_snapshot_overlay(
        const std::string& filename, const std::string& format);

    block::BlockContext& m_ctx;
    DriveConfig m_config;
    std::unique_ptr<block::BlockBackend> m_backend;
    BlockErrorHost* m_error_host = nullptr;
    std::vector<std::function<void()>> m_retries;
    unsigned m_medium_generation = 0;
};

} // namespace kiln::hw
