// DriveConfig: one disk as the user described it (-drive, -hda, -cdrom,
// -device ...,drive=ID), every value already checked. system/ builds these
// from command-line strings; hw/ only reads the struct.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "block/types.h"
#include "util/options.h"

namespace kiln::hw {

enum class DriveInterface { Ide, Virtio, None };
enum class DriveMedia { Disk, Cdrom };
// What a failed request does (werror=/rerror=).
enum class BlockErrorAction { Report, Ignore, Stop, StopOnEnospc };
enum class DiscardMode { Ignore, Unmap };
enum class DetectZeroes { Off, On, Unmap };

const char* block_error_action_name(BlockErrorAction a);

struct DriveConfig {
    std::string id; // "ide0-hd0", "virtio0" or the user's id=
    std::string node_name; // node-name= (informational)
    std::string file; // empty: no medium (a CD-ROM drive may be empty)
    std::string format; // empty: probe
    DriveInterface interface = DriveInterface::Ide;
    int index = -1; // if=ide: bus * 2 + unit
    int bus = -1, unit = -1;
    DriveMedia media = DriveMedia::Disk;
    block::CacheMode cache = block::CacheMode::Writeback;
    std::optional<block::AioEngine> aio;
    bool read_only = false;
    bool snapshot = false; // temporary qcow2 overlay, deleted at exit
    DiscardMode discard = DiscardMode::Ignore;
    DetectZeroes detect_zeroes = DetectZeroes::Off;
    std::string serial;
    BlockErrorAction werror = BlockErrorAction::StopOnEnospc;
    BlockErrorAction rerror = BlockErrorAction::Report;
    // Keys passed on to the block layer ("file.locking=off", "l2-cache-size=..").
    OptionList block_options;
    // The text the user typed, for error messages ("-drive file=x,if=foo").
    std::string origin;
};

enum class DiskDeviceKind { VirtioBlkPci, IdeHd, IdeCd };

// A disk controller function placed on the board: -device, or implied by
// -drive if=ide|virtio.
struct DiskDeviceConfig {
    DiskDeviceKind kind = DiskDeviceKind::IdeHd;
    std::string drive_id; // the DriveConfig it uses (empty: empty CD-ROM)
    std::string id; // -device id=
    std::string serial; // overrides the drive's serial
    int ide_bus = -1, ide_unit = -1; // IDE placement (-1: first free)
    int pci_slot = -1; // virtio: addr= (-1: first free)
    // virtio-blk properties.
    unsigned num_queues = 1;
    unsigned queue_size = 256;
    std::string origin;
};

struct DiskSetConfig {
    std::vector<DriveConfig> drives;
    std::vector<DiskDeviceConfig> devices;
    const DriveConfig* find_drive(const std::string& id) const
    {
        for (const auto& d : drives)
            if (d.id == id)
                return &d;
        return nullptr;
    }
};

} // namespace kiln::hw
