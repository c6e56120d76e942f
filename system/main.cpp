// kiln: QEMU-compatible PC emulator. Start-up runs as phases, each in its
// own file: parse (cli_parse.cpp) -> config (machine_config.cpp) -> build
// (build_vm.cpp) -> realize (realize.cpp) -> run (run.cpp).
#include <pthread.h>
#include <sys/prctl.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "chardev/terminal.h"
#include "system/cli_parse.h"
#include "system/daemon.h"
#include "system/help.h"
#include "system/machine_config.h"
#include "system/vm.h"
#include "util/log.h"

using namespace kiln;
using namespace kiln::system;

namespace {

// Until run_vm() takes signals over through a signalfd, a fatal signal
// must still give the terminal back.
void restore_terminal_and_die(int sig)
{
    chardev::terminal_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

int fail(const Error& e)
{
    fail_daemon();
    chardev::terminal_restore();
    Log::error(e.message());
    return 1;
}

} // namespace

int main(int argc, char** argv)
{
    Log::set_program_name("kiln");
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGABRT, SIGBUS})
        signal(sig, restore_terminal_and_die);
    std::vector<std::string> args(argv + 1, argv + argc);

    auto parsed = parse_args(args);
    if (!parsed.ok())
        return fail(parsed.error());
    auto config = build_machine_config(parsed.value());
    if (!config.ok())
        return fail(config.error());
    MachineConfig& cfg = config.value();
    if (cfg.show_help) {
        print_help(stdout);
        return 0;
    }
    if (cfg.show_version) {
        print_version(stdout);
        return 0;
    }
    if (!cfg.help_topic.empty()) {
        print_help_topic(stdout, cfg.help_topic);
        return 0;
    }
    for (const std::string& note : cfg.notes)
        Log::warning(note);
    if (!cfg.process_name.empty()) // -name process=: what ps and top show
        prctl(PR_SET_NAME, cfg.process_name.substr(0, 15).c_str());
    if (!cfg.log_file.empty() && !Log::set_file(cfg.log_file))
        return fail(Error::invalid("-D " + cfg.log_file + ": cannot open the log file"));
    std::string unknown;
    if (!cfg.log_items.empty() && !Log::enable_categories(cfg.log_items, &unknown))
        return fail(Error::invalid("-d " + cfg.log_items + ": unknown logging item '" + unknown + "' (see -d help)"));

    if (cfg.daemonize) {
        auto d = start_daemon();
        if (!d.ok())
            return fail(d.error());
    }
    auto loop = EventLoop::create();
    if (!loop.ok())
        return fail(loop.error());
    EventLoop& ev = *loop.value();
    auto quit = [&ev](int code) {
        ev.post([&ev, code] { ev.stop(); });
        (void)code;
    };
    auto vm = build_vm(cfg, ev, quit);
    if (!vm.ok())
        return fail(vm.error());
    auto realized = realize_vm(*vm.value());
    if (!realized.ok())
        return fail(realized.error());
    auto monitors = setup_monitors(*vm.value(), ev);
    if (!monitors.ok())
        return fail(monitors.error());
    PidFile pidfile;
    if (!cfg.pidfile.empty()) {
        auto p = PidFile::create(cfg.pidfile);
        if (!p.ok())
            return fail(p.error());
        pidfile = std::move(p).value();
    }
    // From here on SIGINT/SIGTERM/SIGHUP wait for run_vm()'s signalfd
    // (pending ones are read there), so they always end kiln cleanly: a
    // daemon's parent returns now and its caller may signal at once.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    finish_daemon();
    int status = run_vm(*vm.value(), ev);
    vm.value().reset();
    chardev::terminal_restore();
    return status;
}
