#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "system/daemon.h"
#include "system/vm.h"
#include "util/log.h"

namespace kiln::system {

namespace {

constexpr uint64_t k_instructions_per_slice = 1000000;

struct RunState {
    std::atomic<bool> stopping{false};
    std::mutex lock;
    std::condition_variable cv;
};

void vcpu_thread(Vm& vm, EventLoop& loop, RunState& rs, std::function<void(int)> quit)
{
    if (vm.config.debug_threads)
        name_vcpu_thread(*vm.vcpu, 0);
    auto park = [&] {
        // Paused (-S, or -no-shutdown after a guest power-off): the
        // virtual clock stops until kiln is told to end.
        {
            hw::MachineLock lk(*vm.machine);
            vm.machine->clock().pause();
        }
        std::unique_lock lk(rs.lock);
        rs.cv.wait(lk, [&] { return rs.stopping.load(); });
    };
    if (vm.config.start_paused) {
        park();
        return;
    }
    while (!rs.stopping) {
        VcpuExit e = vm.vcpu->run(k_instructions_per_slice);
        unsigned ev = vm.machine->take_events();
        if (e == VcpuExit::Reset)
            ev |= unsigned(hw::MachineEvent::Reset);
        if (e == VcpuExit::Error) {
            Log::error("the vCPU stopped on an internal error (see -d guest_errors,unimp)");
            quit(1);
            return;
        }
        if ((ev & unsigned(hw::MachineEvent::Stop)) || rs.stopping)
            return;
        if (ev & unsigned(hw::MachineEvent::Shutdown)) {
            if (vm.config.no_shutdown) {
                park();
                return;
            }
            quit(0);
            return;
        }
        if (ev & unsigned(hw::MachineEvent::Reset)) {
            if (vm.config.no_reboot) {
                quit(0);
                return;
            }
            auto r = reboot_vm(vm);
            if (!r.ok()) {
                Log::error(r.error().message());
                quit(1);
                return;
            }
        }
    }
}

} // namespace

int run_vm(Vm& vm, EventLoop& loop)
{
    RunState rs;
    int exit_code = 0;
    auto quit = [&loop, &exit_code](int code) {
        loop.post([&loop, &exit_code, code] {
            exit_code = code;
            loop.stop();
        });
    };

    // Signals arrive through a signalfd on the main loop; every thread
    // (the vCPU thread inherits this mask) has them blocked.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd >= 0) {
        (void)loop.add_fd(sfd, FdEvents::Read, [&](uint32_t) {
            signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == ssize_t(sizeof si)) {
                Log::error(signal_exit_message(si.ssi_signo, pid_t(si.ssi_pid)));
                exit_code = 0;
                loop.stop();
            }
        });
    }

    std::thread vcpu([&] { vcpu_thread(vm, loop, rs, quit); });
    loop.run();

    rs.stopping = true;
    rs.cv.notify_all();
    vm.machine->request_stop();
    vm.vcpu->kick();
    vcpu.join();
    if (vm.disks) { // flush and close the images (qcow2 clean, overlays gone)
        auto closed = loop.run_until_complete(vm.disks->close());
        if (!closed.ok())
            Log::error(closed.error().message());
    }
    if (sfd >= 0) {
        loop.remove_fd(sfd);
        close(sfd);
    }
    return exit_code;
}

} // namespace kiln::system
