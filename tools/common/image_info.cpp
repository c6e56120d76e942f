#include "tools/common/image_info.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "block/context.h"
#include "util/size.h"

namespace kiln::tools {

std::string full_backing_filename(const std::string& image_filename, const std::string& backing)
{
    return block::resolve_backing_path(image_filename, backing);
}

Json snapshot_to_json(const block::SnapshotInfo& sn)
{
    Json j = Json::object();
    j["id"] = sn.id;
    j["name"] = sn.name;
    j["vm-state-size"] = sn.vm_state_size;
    j["date-sec"] = sn.date_sec;
    j["date-nsec"] = sn.date_nsec;
    j["vm-clock-sec"] = sn.vm_clock_nsec / 1000000000ull;
    j["vm-clock-nsec"] = sn.vm_clock_nsec % 1000000000ull;
    if (sn.icount != UINT64_MAX)
        j["icount"] = sn.icount;
    return j;
}

Json collect_image_info(block::BlockNode& node, const std::string& filename, const std::string& format)
{
    Json info = Json::object();
    info["filename"] = filename;
    info["format"] = format;
    info["dirty-flag"] = node.dirty();
    if (auto actual = node.allocated_size())
        info["actual-size"] = *actual;
    info["virtual-size"] = node.size_bytes();
    if (node.cluster_size())
        info["cluster-size"] = node.cluster_size();
    Json specific = node.format_specific_info();
    if (specific.is_object() && specific.contains("data") && specific["data"].contains("encrypt"))
        info["encrypted"] = true;
    std::string backing = node.backing_file_name();
    if (!backing.empty()) {
        info["backing-filename"] = backing;
        info["full-backing-filename"] = full_backing_filename(filename, backing);
        std::string bfmt = node.backing_format_name();
        if (!bfmt.empty())
            info["backing-filename-format"] = bfmt;
    }
    auto snapshots = node.snapshots();
    if (!snapshots.empty()) {
        Json list = Json::array();
        for (auto& sn : snapshots)
            list.push_back(snapshot_to_json(sn));
        info["snapshots"] = list;
    }
    if (!specific.is_null())
        info["format-specific"] = Json(specific);
    return info;
}

std::string dump_snapshot_table(const std::vector<block::SnapshotInfo>& snapshots)
{
    std::string out = "Snapshot list:\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-10s%-17s%8s%20s%13s%11s", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
                  "ICOUNT");
    out += line;
    out += '\n';
    for (auto& sn : snapshots) {
        time_t t = time_t(sn.date_sec);
        struct tm tm;
        localtime_r(&t, &tm);
        char date[64];
        std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t secs = sn.vm_clock_nsec / 1000000000ull;
        char clock[64];
        std::snprintf(clock, sizeof clock, "%02u:%02u:%02u.%03u", unsigned(secs / 3600), unsigned((secs / 60) % 60),
                      unsigned(secs % 60), unsigned((sn.vm_clock_nsec / 1000000) % 1000));
        std::string icount = sn.icount == UINT64_MAX ? "" : std::to_string(sn.icount);
        std::snprintf(line, sizeof line, "%-9s %-16s %8s%20s%13s%11s", sn.id.c_str(), sn.name.c_str(),
                      format_size_human(sn.vm_state_size).c_str(), date, clock, icount.c_str());
        out += line;
        out += '\n';
    }
    return out;
}

static std::string scalar_text(const Json& v)
{
    switch (v.type()) {
    case Json::value_t::string: return v.get<std::string>();
    case Json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case Json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case Json::value_t::number_float: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
        return buf;
    }
    default: return "null";
    }
}

std::string dump_qobject_human(const Json& value, int indentation)
{
    std::string out;
    std::string pad(size_t(indentation) * 4, ' ');
    if (value.is_object()) {
        for (const std::string& key : qdict_order(value)) {
            const Json& v = value.at(key);
            std::string name = key;
            for (char& c : name)
                if (c == '-')
                    c = ' ';
            bool composite = v.is_object() || v.is_array();
            out += pad + name + ":" + (composite ? "\n" : " ");
            if (composite)
                out += dump_qobject_human(v, indentation + 1);
            else
                out += scalar_text(v) + "\n";
        }
    } else if (value.is_array()) {
        int i = 0;
        for (const Json& v : value) {
            bool composite = v.is_object() || v.is_array();
            out += pad + "[" + std::to_string(i++) + "]:" + (composite ? "\n" : " ");
            if (composite)
                out += dump_qobject_human(v, indentation + 1);
            else
                out += scalar_text(v) + "\n";
        }
    } else {
        out += scalar_text(value) + "\n";
    }
    return out;
}

std::string dump_image_info_human(const Json& info)
{
    std::string out;
    char buf[1024];
    out += "image: " + info.value("filename", std::string()) + "\n";
    out += "file format: " + info.value("format", std::string()) + "\n";
    uint64_t vsize = info.value("virtual-size", uint64_t(0));
    std::snprintf(buf, sizeof buf, "virtual size: %s (%" PRIu64 " bytes)\n", format_size_human(vsize).c_str(), vsize);
    out += buf;
    if (info.contains("actual-size"))
        out += "disk size: " + format_size_human(info["actual-size"].get<uint64_t>()) + "\n";
    else
        out += "disk size: unavailable\n";
    if (info.value("encrypted", false))
        out += "encrypted: yes\n";
    if (info.contains("cluster-size"))
        out += "cluster_size: " + std::to_string(info["cluster-size"].get<uint64_t>()) + "\n";
    if (info.value("dirty-flag", false))
        out += "dirty flag: yes\n";
    if (info.contains("backing-filename")) {
        std::string backing = info["backing-filename"].get<std::string>();
        out += "backing file: " + backing;
        std::string full = info.value("full-backing-filename", std::string());
        if (!full.empty() && full != backing)
            out += " (actual path: " + full + ")";
        out += "\n";
        if (info.contains("backing-filename-format"))
            out += "backing file format: " + info["backing-filename-format"].get<std::string>() + "\n";
    }
    if (info.contains("snapshots")) {
        std::vector<block::SnapshotInfo> list;
        for (auto& j : info["snapshots"]) {
            block::SnapshotInfo sn;
            sn.id = j.value("id", std::string());
            sn.name = j.value("name", std::string());
            sn.vm_state_size = j.value("vm-state-size", uint64_t(0));
            sn.date_sec = j.value("date-sec", uint32_t(0));
            sn.date_nsec = j.value("date-nsec", uint32_t(0));
            sn.vm_clock_nsec = j.value("vm-clock-sec", uint64_t(0)) * 1000000000ull + j.value("vm-clock-nsec", uint64_t(0));
            sn.icount = j.value("icount", UINT64_MAX);
            list.push_back(sn);
        }
        out += dump_snapshot_table(list);
    }
    if (info.contains("format-specific")) {
        const Json& spec = info["format-specific"];
        if (spec.contains("data")) {
            out += "Format specific information:\n";
            out += dump_qobject_human(spec["data"], 1);
        }
    }
    return out;
}

} // namespace kiln::tools
