// kiln-img snapshot [--object objectdef] [--image-opts] [-U] [-q]
// [-l | -a snapshot | -c snapshot | -d snapshot] filename
#include <cstdio>
#include <cstring>

#include <sys/time.h>

#include "tools/common/cli.h"
#include "tools/common/image_info.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"

namespace kiln::tools {

namespace {

enum class Action { None, List, Apply, Create, Delete };

struct SnapshotArgs {
    CommonOptions common;
    Action action = Action::None;
    std::string name;
    std::string filename;
};

// qemu-img's bdrv_snapshot_find: the first snapshot with that name (not id).
std::optional<block::SnapshotInfo> find_snapshot_by_name(const block::BlockNode& node, const std::string& name)
{
    for (auto& sn : node.snapshots())
        if (sn.name == name)
            return sn;
    return std::nullopt;
}

std::string errno_text(const Error& e)
{
    return std::strerror(e.errno_value() ? e.errno_value() : EIO);
}

Task<int> do_snapshot(ToolEnv& env, SnapshotArgs args)
{
    ImageRequest req = request_from(args.common, args.filename);
    req.flags.read_write = args.action != Action::List;
    req.flags.no_backing = true;
    auto image = co_await open_or_report(env, req);
    if (!image)
        co_return 1;
    block::BlockNode& node = *image->node;
    int ret = 0;
    switch (args.action) {
    case Action::None:
        break;
    case Action::List: {
        auto list = node.snapshots();
        if (!list.empty())
            std::fputs(dump_snapshot_table(list).c_str(), stdout);
        break;
    }
    case Action::Create: {
        block::SnapshotInfo sn;
        sn.name = args.name;
        timeval tv;
        gettimeofday(&tv, nullptr);
        sn.date_sec = uint32_t(tv.tv_sec);
        sn.date_nsec = uint32_t(tv.tv_usec) * 1000;
        sn.icount = 0;
        sn.disk_size = node.size_bytes();
        auto r = co_await node.snapshot_create(sn);
        if (!r) {
            int err = r.error().errno_value() ? r.error().errno_value() : EIO;
            std::string why = r.error().kind() == ErrorKind::Corrupt
                ? r.error().message()
                : "-" + std::to_string(err) + " (" + std::strerror(err) + ")";
            report_error("Could not create snapshot '" + args.name + "': " + why);
            ret = 1;
        }
        break;
    }
    case Action::Apply: {
        auto r = co_await node.snapshot_goto(args.name);
        if (!r && r.error().kind() == ErrorKind::Busy) { // "Device has active dirty bitmaps"
            report_error("Could not apply snapshot '" + args.name + "': " + r.error().message());
            ret = 1;
        } else if (!r) {
            // QEMU reports only the errno; corruption details say more.
            std::string why = r.error().kind() == ErrorKind::Corrupt ? r.error().message() : errno_text(r.error());
            report_error("Could not apply snapshot '" + args.name + "': Failed to load snapshot: " + why);
            ret = 1;
        }
        break;
    }
    case Action::Delete: {
        auto sn = find_snapshot_by_name(node, args.name);
        if (!sn) {
            report_error("Could not delete snapshot '" + args.name + "': snapshot not found");
            ret = 1;
            break;
        }
        auto r = co_await node.snapshot_delete(sn->id, sn->name);
        if (!r) {
            report_error("Could not delete snapshot '" + args.name + "': " + r.error().message());
            ret = 1;
        }
        break;
    }
    }
    co_return co_await close_with_status(*image, ret);
}

} // namespace

int img_snapshot(ToolEnv& env, int argc, char** argv)
{
    SnapshotArgs args;
    int rc = parse_options(env, argc, argv, ":la:c:d:hqU", k_long_standard, {}, args.common, [&](int c) {
        Action action = c == 'l' ? Action::List : c == 'a' ? Action::Apply : c == 'c' ? Action::Create : Action::Delete;
        if (args.action != Action::None)
            return error_exit("Cannot mix '-l', '-a', '-c', '-d'");
        args.action = action;
        if (action != Action::List)
            args.name = optarg;
        return k_parse_continue;
    });
    if (rc != k_parse_continue)
        return rc;
    auto filename = one_filename(argc, argv, args.common);
    if (!filename)
        return 1;
    args.filename = *filename;
    return env.run(do_snapshot(env, args));
}

} // namespace kiln::tools
