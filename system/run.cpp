#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <thread>

#include "system/daemon.h"
#include "system/vm.h"
#include "util/log.h"

namespace kiln::system {

namespace {

constexpr uint64_t k_instructions_per_slice = 1000000;

void vcpu_thread(Vm& vm, std::function<void(int)> quit)
{
    // Run control (stop/cont, -S, -no-shutdown) is VmControl's gate: the
    // thread parks there while the VM is paused.
    if (vm.config.debug_threads)
        name_vcpu_thread(*vm.vcpu, 0);
    VmControl& ctl = *vm.control;
    ctl.vcpu_thread_started();
    while (ctl.vcpu_wait_until_running()) {
        VcpuExit e = vm.vcpu->run(k_instructions_per_slice);
        unsigned ev = vm.machine->take_events();
        if (e == VcpuExit::Reset)
            ev |= unsigned(hw::MachineEvent::Reset);
        if (e == VcpuExit::Error) {
            Log::error("the vCPU stopped on an internal error (see -d guest_errors,unimp)");
            quit(1);
            return;
        }
        // MachineEvent::Stop only gets the vCPU out of run(); whether it
        // parks is the gate's decision.
        if (ev & unsigned(hw::MachineEvent::Shutdown)) {
            if (ctl.guest_shutdown())
                continue; // -no-shutdown: parked, paused in "shutdown"
            quit(0);
            return;
        }
        if (ev & unsigned(hw::MachineEvent::Reset)) {
            if (vm.config.no_reboot) {
                ctl.guest_reset_ends_run();
                quit(0);
                return;
            }
            ctl.guest_reset();
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

    vm.control->set_exit(quit);
    if (vm.config.start_paused)
        vm.control->start_paused();
    std::thread vcpu([&] {
        vcpu_thread(vm, quit);
        vm.control->vcpu_thread_exited();
    });
    loop.run();

    vm.control->end_run();
    vm.control->set_exit({});
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
