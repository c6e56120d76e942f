// Block devices: info block, info blockstats, commit, eject, change /
// blockdev-change-medium, block_resize.
#include <cstring>

#include "monitor/command_table.h"
#include "monitor/text_dump.h"

namespace kiln::monitor {

namespace {

Json stats_json(const BlockStats& s)
{
    Json j;
    j["unmap_operations"] = s.unmap_operations;
    j["unmap_merged"] = s.unmap_merged;
    j["flush_total_time_ns"] = s.flush_total_time_ns;
    j["wr_highest_offset"] = s.wr_highest_offset;
    j["wr_total_time_ns"] = s.wr_total_time_ns;
    j["failed_wr_operations"] = s.failed_wr_operations;
    j["failed_rd_operations"] = s.failed_rd_operations;
    j["wr_merged"] = s.wr_merged;
    j["wr_bytes"] = s.wr_bytes;
    j["timed_stats"] = Json::array();
    j["failed_unmap_operations"] = s.failed_unmap_operations;
    j["failed_flush_operations"] = s.failed_flush_operations;
    j["account_invalid"] = s.account_invalid;
    j["rd_total_time_ns"] = s.rd_total_time_ns;
    j["invalid_unmap_operations"] = s.invalid_unmap_operations;
    j["flush_operations"] = s.flush_operations;
    j["wr_operations"] = s.wr_operations;
    j["unmap_bytes"] = s.unmap_bytes;
    j["rd_merged"] = s.rd_merged;
    j["rd_bytes"] = s.rd_bytes;
    j["unmap_total_time_ns"] = s.unmap_total_time_ns;
    j["invalid_flush_operations"] = s.invalid_flush_operations;
    j["account_failed"] = s.account_failed;
    if (s.idle_time_ns)
        j["idle_time_ns"] = *s.idle_time_ns;
    j["rd_operations"] = s.rd_operations;
    j["invalid_wr_operations"] = s.invalid_wr_operations;
    j["invalid_rd_operations"] = s.invalid_rd_operations;
    return j;
}

Json inserted_json(const BlockMedium& m)
{
    Json j;
    j["iops_rd"] = 0;
    j["detect_zeroes"] = m.detect_zeroes;
    Json image;
    image["virtual-size"] = m.virtual_size_bytes;
    image["filename"] = m.filename;
    if (m.cluster_size_bytes)
        image["cluster-size"] = *m.cluster_size_bytes;
    image["format"] = m.format;
    if (m.actual_size_bytes)
        image["actual-size"] = *m.actual_size_bytes;
    if (!m.backing_file.empty())
        image["backing-filename"] = m.backing_file;
    image["dirty-flag"] = false;
    j["image"] = std::move(image);
    j["iops_wr"] = 0;
    j["ro"] = m.read_only;
    j["node-name"] = m.node_name;
    if (!m.backing_file.empty())
        j["backing_file"] = m.backing_file;
    j["backing_file_depth"] = m.backing_file_depth;
    j["drv"] = m.format;
    j["iops"] = 0;
    j["bps_wr"] = 0;
    j["write_threshold"] = 0;
    j["encrypted"] = m.encrypted;
    j["bps"] = 0;
    j["bps_rd"] = 0;
    j["cache"]
        = Json { { "no-flush", m.cache_no_flush }, { "direct", m.cache_direct }, { "writeback", m.cache_writeback } };
    j["file"] = m.filename;
    return j;
}

Json block_json(const BlockDeviceInfo& d)
{
    Json j;
    if (d.io_status)
        j["io-status"] = *d.io_status;
    j["device"] = d.device;
    j["locked"] = d.locked;
    j["removable"] = d.removable;
    if (d.medium)
        j["inserted"] = inserted_json(*d.medium);
    if (!d.qdev.empty())
        j["qdev"] = d.qdev;
    if (d.removable)
        j["tray_open"] = d.tray_open;
    j["type"] = "unknown";
    return j;
}

void print_block_entry(std::string& out, const Json* info, const Json* inserted)
{
    if (info && !(*info)["device"].get<std::string>().empty()) {
        out += (*info)["device"].get<std::string>();
        if (inserted && inserted->contains("node-name"))
            out += " (" + (*inserted)["node-name"].get<std::string>() + ")";
    } else if (inserted && inserted->contains("node-name")) {
        out += (*inserted)["node-name"].get<std::string>();
    } else if (info && info->contains("qdev")) {
        out += (*info)["qdev"].get<std::string>();
    } else {
        out += "<anonymous>";
    }
    if (inserted)
        out += ": " + (*inserted)["file"].get<std::string>() + " (" + (*inserted)["drv"].get<std::string>()
            + ((*inserted)["ro"].get<bool>() ? ", read-only" : "")
            + ((*inserted)["encrypted"].get<bool>() ? ", encrypted" : "") + ")\n";
    else
        out += ": [not inserted]\n";
    if (info) {
        if (info->contains("qdev"))
            out += "    Attached to:      " + (*info)["qdev"].get<std::string>() + "\n";
        if (info->contains("io-status") && (*info)["io-status"] != "ok")
            out += "    I/O status:       " + (*info)["io-status"].get<std::string>() + "\n";
        if ((*info)["removable"].get<bool>())
            out += std::string("    Removable device: ") + ((*info)["locked"].get<bool>() ? "" : "not ")
                + "locked, tray " + ((*info).value("tray_open", false) ? "open" : "closed") + "\n";
    }
    if (!inserted)
        return;
    const Json& cache = (*inserted)["cache"];
    out += std::string("    Cache mode:       ") + (cache["writeback"].get<bool>() ? "writeback" : "writethrough")
        + (cache["direct"].get<bool>() ? ", direct" : "") + (cache["no-flush"].get<bool>() ? ", ignore flushes" : "")
        + "\n";
    if (inserted->contains("backing_file"))
        out += "    Backing file:     " + (*inserted)["backing_file"].get<std::string>()
            + " (chain depth: " + std::to_string((*inserted)["backing_file_depth"].get<int64_t>()) + ")\n";
    if ((*inserted)["detect_zeroes"] != "off")
        out += "    Detect zeroes:    " + (*inserted)["detect_zeroes"].get<std::string>() + "\n";
}

void print_block(std::string& out, const Json& result, const Json& args)
{
    std::string device = args.value("device", "");
    bool nodes = args.value("nodes", false);
    bool first = true;
    for (const auto& info : result) {
        if (nodes)
            break;
        if (!device.empty() && info["device"] != device)
            continue;
        if (!first)
            out += "\n";
        first = false;
        const Json* inserted = info.contains("inserted") ? &info["inserted"] : nullptr;
        print_block_entry(out, &info, inserted);
    }
    if (!nodes)
        return;
    // -n: the named nodes (here the top node of each inserted medium).
    for (const auto& info : result) {
        if (!info.contains("inserted"))
            continue;
        const Json& inserted = info["inserted"];
        if (!device.empty() && inserted["node-name"] != device)
            continue;
        if (!first)
            out += "\n";
        first = false;
        print_block_entry(out, nullptr, &inserted);
    }
}

// A BlockBackend name or the node name of an inserted medium.
bool block_exists(MachineControl& machine, const std::string& name)
{
    if (name.empty())
        return false;
    for (const auto& d : machine.block_devices())
        if (d.device == name || (d.medium && d.medium->node_name == name))
            return true;
    return false;
}

CommandError device_not_found(const std::string& device)
{
    return { QmpErrorClass::DeviceNotFound, "Device '" + device + "' not found" };
}

std::string errno_text(const Error& error)
{
    return error.errno_value() ? std::strerror(error.errno_value()) : error.message();
}

} // namespace

void register_block_commands(CommandTable& table)
{
    Command block;
    block.hmp_name = "block";
    block.info_subcommand = true;
    block.hmp_args_type = "nodes:-n,verbose:-v,device:B?";
    block.hmp_params = "[-n] [-v] [device]";
    block.help = "show info of one block device or all block devices (-n: show named nodes; -v: show details)";
    block.qmp_name = "query-block";
    block.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& d : ctx.machine.block_devices())
            out.push_back(block_json(d));
        return out;
    };
    block.hmp_print = print_block;
    table.add(std::move(block));

    Command blockstats;
    blockstats.hmp_name = "blockstats";
    blockstats.info_subcommand = true;
    blockstats.help = "show block device statistics";
    blockstats.qmp_name = "query-blockstats";
    blockstats.qmp_args = { { "query-nodes", ArgType::Bool, true } };
    blockstats.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& d : ctx.machine.block_devices()) {
            Json j;
            j["device"] = d.device;
            if (d.medium)
                j["node-name"] = d.medium->node_name;
            j["stats"] = stats_json(d.stats);
            if (!d.qdev.empty())
                j["qdev"] = d.qdev;
            out.push_back(std::move(j));
        }
        return out;
    };
    blockstats.hmp_print = [](std::string& out, const Json& r, const Json&) {
        for (const auto& entry : r) {
            if (entry["device"].get<std::string>().empty())
                continue;
            const Json& s = entry["stats"];
            auto n = [&s](const char* key) { return std::to_string(s[key].get<int64_t>()); };
            out += entry["device"].get<std::string>() + ": rd_bytes=" + n("rd_bytes") + " wr_bytes=" + n("wr_bytes")
                + " rd_operations=" + n("rd_operations") + " wr_operations=" + n("wr_operations")
                + " flush_operations=" + n("flush_operations") + " wr_total_time_ns=" + n("wr_total_time_ns")
                + " rd_total_time_ns=" + n("rd_total_time_ns") + " flush_total_time_ns=" + n("flush_total_time_ns")
                + " rd_merged=" + n("rd_merged") + " wr_merged=" + n("wr_merged")
                + " idle_time_ns=" + std::to_string(s.value("idle_time_ns", int64_t(0))) + "\n";
        }
    };
    table.add(std::move(blockstats));

    Command commit;
    commit.hmp_name = "commit";
    commit.hmp_args_type = "device:B";
    commit.hmp_params = "device|all";
    commit.help = "commit changes to the disk images (if -snapshot is used) or backing files";
    commit.hmp_error_bare = true;
    commit.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        std::string device = args["device"].get<std::string>();
        if (device != "all" && !block_exists(ctx.machine, device))
            return device_not_found(device);
        auto result = ctx.machine.commit(device);
        if (result)
            return Json::object();
        return CommandError::generic("'commit' error for '" + device + "': " + errno_text(result.error()));
    };
    table.add(std::move(commit));

    Command eject;
    eject.hmp_name = "eject";
    eject.hmp_args_type = "force:-f,device:B";
    eject.hmp_params = "[-f] device";
    eject.help = "eject a removable medium (use -f to force it)";
    eject.qmp_name = "eject";
    eject.qmp_args
        = { { "device", ArgType::String, true }, { "id", ArgType::String, true }, { "force", ArgType::Bool, true } };
    eject.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        std::string device = args.value("device", args.value("id", ""));
        if (!block_exists(ctx.machine, device))
            return device_not_found(device);
        auto result = ctx.machine.eject(device, args.value("force", false));
        if (!result)
            return result.error();
        return Json::object();
    };
    table.add(std::move(eject));

    Command change;
    change.hmp_name = "change";
    change.hmp_args_type = "device:B,force:-f,target:F,arg:s?,read-only-mode:s?";
    change.hmp_params = "device [-f] filename [format [read-only-mode]]";
    change.help = "change a removable medium, optional format, use -f to force the operation";
    change.qmp_name = "blockdev-change-medium";
    change.qmp_args = { { "device", ArgType::String, true }, { "id", ArgType::String, true },
        { "filename", ArgType::String }, { "format", ArgType::String, true }, { "force", ArgType::Bool, true },
        { "read-only-mode", ArgType::String, true } };
    change.hmp_to_args = [](CommandContext&, const Json& hmp) -> CommandResult {
        Json args;
        args["device"] = hmp["device"];
        args["filename"] = hmp["target"];
        if (hmp.contains("arg"))
            args["format"] = hmp["arg"];
        if (hmp.contains("force"))
            args["force"] = hmp["force"];
        if (hmp.contains("read-only-mode")) {
            std::string mode = hmp["read-only-mode"].get<std::string>();
            if (mode != "retain" && mode != "read-only" && mode != "read-write")
                return CommandError::generic("invalid parameter value: " + mode);
            args["read-only-mode"] = mode;
        }
        return args;
    };
    change.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        std::string device = args.value("device", args.value("id", ""));
        if (!block_exists(ctx.machine, device))
            return device_not_found(device);
        std::string mode_text = args.value("read-only-mode", "retain");
        MediumMode mode = MediumMode::Retain;
        if (mode_text == "read-only")
            mode = MediumMode::ReadOnly;
        else if (mode_text == "read-write")
            mode = MediumMode::ReadWrite;
        else if (mode_text != "retain")
            return CommandError::generic("Parameter 'read-only-mode' does not accept value '" + mode_text + "'");
        auto result = ctx.machine.change_medium(
            device, args["filename"].get<std::string>(), args.value("format", ""), mode, args.value("force", false));
        if (!result)
            return result.error();
        return Json::object();
    };
    table.add(std::move(change));

    Command resize;
    resize.hmp_name = "block_resize";
    resize.hmp_args_type = "device:B,size:o";
    resize.hmp_params = "device size";
    resize.help = "resize a block image";
    resize.qmp_name = "block_resize";
    resize.qmp_args
        = { { "device", ArgType::String, true }, { "node-name", ArgType::String, true }, { "size", ArgType::Int } };
    resize.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        std::string device = args.value("device", "");
        std::string node = args.value("node-name", "");
        int64_t size = args["size"].get<int64_t>();
        if (size < 0)
            return CommandError::generic("Parameter 'size' expects a >0 size");
        if (!block_exists(ctx.machine, device.empty() ? node : device))
            return CommandError::generic("Cannot find device='" + device + "' nor node-name='" + node + "'");
        auto result = ctx.machine.block_resize(device.empty() ? node : device, uint64_t(size));
        if (!result)
            return result.error();
        return Json::object();
    };
    table.add(std::move(resize));
}

} // namespace kiln::monitor
