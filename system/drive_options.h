// -drive, -hda..-hdd, -cdrom, -snapshot and the disk forms of -device
// (virtio-blk-pci, ide-hd, ide-cd) -> DiskSetConfig, with QEMU's error
// messages. Images are not opened here: that happens when the machine is
// built (hw/block/drive.h), where the block layer reports missing files and
// lock conflicts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hw/block/drive_config.h"
#include "util/result.h"

namespace kiln::system {

// One command-line option in the order given: option without dashes
// ("drive", "hda", "cdrom", "snapshot", "device") and its value.
struct DiskArg {
    std::string option;
    std::string value;
};

// Options this parser owns (everything but -device, which is shared).
bool is_disk_option(std::string_view option);
// True if a -device value names a disk device ("virtio-blk-pci,drive=d0").
bool is_disk_device(std::string_view device_value);

// Errors read "-drive VALUE: message" as QEMU prints them after its
// program name.
Result<hw::DiskSetConfig> parse_disk_args(const std::vector<DiskArg>& args);

} // namespace kiln::system
