// qemu-img info's data (QAPI ImageInfo as JSON) and its human rendering,
// including the snapshot table and the "Format specific information:"
// block, both shared with `snapshot -l`.
#pragma once

#include <string>
#include <vector>

#include "block/node.h"
#include "tools/common/qjson.h"

namespace kiln::tools {

// ImageInfo for `node`, opened under the name `filename` as `format`.
// Members are inserted in QAPI schema order (see qjson.h).
Json collect_image_info(block::BlockNode& node, const std::string& filename, const std::string& format);

// The backing file name as the chain would open it: relative names are
// taken relative to the directory of `image_filename` (QEMU's path_combine).
std::string full_backing_filename(const std::string& image_filename, const std::string& backing);

// bdrv_image_info_dump: the human text of `info`.
std::string dump_image_info_human(const Json& info);

// "Snapshot list:" + header + rows (bdrv_snapshot_dump).
std::string dump_snapshot_table(const std::vector<block::SnapshotInfo>& snapshots);
Json snapshot_to_json(const block::SnapshotInfo& sn);

// dump_qobject: the indented key: value form of a format-specific object.
std::string dump_qobject_human(const Json& value, int indentation);

} // namespace kiln::tools
