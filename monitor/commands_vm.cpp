// VM life cycle and identity: status, stop, cont, system_reset,
// system_powerdown, quit, version, name, kvm, cpus.
#include "monitor/command_table.h"
#include "monitor/hmp_args.h"

namespace kiln::monitor {

const char* run_state_name(RunState state)
{
    switch (state) {
    case RunState::Debug:
        return "debug";
    case RunState::InMigrate:
        return "inmigrate";
    case RunState::InternalError:
        return "internal-error";
    case RunState::IoError:
        return "io-error";
    case RunState::Paused:
        return "paused";
    case RunState::PostMigrate:
        return "postmigrate";
    case RunState::Prelaunch:
        return "prelaunch";
    case RunState::FinishMigrate:
        return "finish-migrate";
    case RunState::RestoreVm:
        return "restore-vm";
    case RunState::Running:
        return "running";
    case RunState::SaveVm:
        return "save-vm";
    case RunState::Shutdown:
        return "shutdown";
    case RunState::Suspended:
        return "suspended";
    case RunState::Watchdog:
        return "watchdog";
    case RunState::GuestPanicked:
        return "guest-panicked";
    case RunState::Colo:
        return "colo";
    }
    return "running";
}

namespace {

CommandResult empty_or(const Result<void>& result)
{
    if (!result)
        return result.error();
    return Json::object();
}

Command simple(std::string hmp, std::string qmp, std::string help, std::function<Result<void>(MachineControl&)> action)
{
    Command c;
    c.hmp_name = std::move(hmp);
    c.qmp_name = std::move(qmp);
    c.help = std::move(help);
    c.run = [action](CommandContext& ctx, const Json&) { return empty_or(action(ctx.machine)); };
    return c;
}

} // namespace

void register_vm_commands(CommandTable& table)
{
    table.add(simple("stop|s", "stop", "stop emulation", [](MachineControl& m) { return m.stop(); }));
    table.add(simple("cont|c", "cont", "resume emulation", [](MachineControl& m) { return m.cont(); }));
    table.add(
        simple("system_reset", "system_reset", "reset the system", [](MachineControl& m) { return m.system_reset(); }));
    table.add(simple("system_powerdown", "system_powerdown", "send system power down event",
        [](MachineControl& m) { return m.system_powerdown(); }));
    table.add(simple("quit|q", "quit", "quit the emulator", [](MachineControl& m) -> Result<void> {
        m.quit();
        return {};
    }));

    Command cpu;
    cpu.hmp_name = "cpu";
    cpu.hmp_args_type = "index:i";
    cpu.hmp_params = "index";
    cpu.help = "set the default CPU";
    cpu.hmp_error_bare = true;
    cpu.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        int64_t index = args["index"].get<int64_t>();
        bool found = false;
        for (const auto& c : ctx.machine.cpus())
            found = found || c.index == index;
        if (!found || !ctx.hmp)
            return CommandError::generic("invalid CPU index");
        ctx.hmp->current_cpu = index;
        return Json::object();
    };
    table.add(std::move(cpu));

    Command status = info_command("status", "query-status", "show the current VM status (running|paused)");
    status.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        RunState state = ctx.machine.run_state();
        Json out;
        out["status"] = run_state_name(state);
        out["singlestep"] = ctx.machine.singlestep();
        out["running"] = state == RunState::Running;
        return out;
    };
    status.hmp_print = [](std::string& out, const Json& r, const Json&) {
        bool running = r["running"].get<bool>();
        out += "VM status: ";
        out += running ? "running" : "paused";
        if (r["singlestep"].get<bool>())
            out += " (single step mode)";
        std::string state = r["status"].get<std::string>();
        if (!running && state != "paused")
            out += " (" + state + ")";
        out += "\n";
    };
    table.add(std::move(status));

    Command version = info_command("version", "query-version", "show the version of QEMU");
    version.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        VersionInfo v = ctx.machine.version();
        Json out;
        out["qemu"] = Json { { "micro", v.micro }, { "minor", v.minor }, { "major", v.major } };
        out["package"] = v.package;
        return out;
    };
    version.hmp_print = [](std::string& out, const Json& r, const Json&) {
        const Json& q = r["qemu"];
        out += std::to_string(q["major"].get<int64_t>()) + "." + std::to_string(q["minor"].get<int64_t>()) + "."
            + std::to_string(q["micro"].get<int64_t>()) + r["package"].get<std::string>() + "\n";
    };
    table.add(std::move(version));

    Command name = info_command("name", "query-name", "show the current VM name");
    name.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::object();
        if (auto n = ctx.machine.name())
            out["name"] = *n;
        return out;
    };
    name.hmp_print = [](std::string& out, const Json& r, const Json&) {
        if (r.contains("name"))
            out += r["name"].get<std::string>() + "\n";
    };
    table.add(std::move(name));

    Command kvm = info_command("kvm", "query-kvm", "show KVM information");
    kvm.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        KvmInfo k = ctx.machine.kvm();
        return Json { { "enabled", k.enabled }, { "present", k.present } };
    };
    kvm.hmp_print = [](std::string& out, const Json& r, const Json&) {
        out += "kvm support: ";
        if (r["present"].get<bool>())
            out += r["enabled"].get<bool>() ? "enabled\n" : "disabled\n";
        else
            out += "not compiled\n";
    };
    table.add(std::move(kvm));

    Command cpus = info_command("cpus", "query-cpus-fast", "show infos for each CPU");
    cpus.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& cpu : ctx.machine.cpus()) {
            Json entry;
            entry["thread-id"] = cpu.thread_id;
            entry["props"] = Json { { "core-id", cpu.core_id }, { "thread-id", cpu.thread_in_core },
                { "socket-id", cpu.socket_id } };
            entry["qom-path"] = cpu.qom_path;
            entry["cpu-index"] = cpu.index;
            entry["target"] = "x86_64";
            out.push_back(std::move(entry));
        }
        return out;
    };
    cpus.hmp_to_args = [](CommandContext& ctx, const Json& args) -> CommandResult {
        // The current CPU is HMP session state; carry it to the printer.
        Json out = args;
        out["__current_cpu"] = ctx.hmp ? ctx.hmp->current_cpu : 0;
        return out;
    };
    cpus.hmp_print = [](std::string& out, const Json& r, const Json& args) {
        int64_t current = args.value("__current_cpu", int64_t(0));
        for (const auto& cpu : r) {
            int64_t index = cpu["cpu-index"].get<int64_t>();
            out += std::string(1, index == current ? '*' : ' ') + " CPU #" + std::to_string(index)
                + ": thread_id=" + std::to_string(cpu["thread-id"].get<int64_t>()) + "\n";
        }
    };
    table.add(std::move(cpus));
}

} // namespace kiln::monitor
