// Vm: everything phase 3 (build) creates and phases 4-5 (realize, run)
// use: the machine, its chardevs and serial links, and the vCPU.
#pragma once

#include <unistd.h>

#include <memory>
#include <vector>

#include "block/context.h"
#include "chardev/chardev.h"
#include "hw/i386/linux_boot.h"
#include "hw/i386/pc.h"
#include "hw/i386/pc_disks.h"
#include "monitor/monitor.h"
#include "system/machine_config.h"
#include "system/machine_control_impl.h"
#include "system/serial_link.h"
#include "system/vcpu.h"
#include "util/event_loop.h"
#include "util/thread_pool.h"

namespace kiln::system {

struct Vm {
    MachineConfig config;
    std::vector<std::unique_ptr<chardev::Chardev>> chardevs;
    std::vector<std::unique_ptr<SerialLink>> serial_links;
    std::unique_ptr<hw::PcMachine> machine;
    std::unique_ptr<Vcpu> vcpu;
    // Disks and the block layer under them; destroyed before the machine.
    std::unique_ptr<ThreadPool> block_pool;
    std::unique_ptr<block::BlockContext> block_ctx;
    std::unique_ptr<hw::PcDisks> disks;
    hw::BootCpuSetup boot;
    bool quit_requested_by_user = false;
    // The monitor's view of the VM and run control (created by build_vm),
    // then the monitor itself (setup_monitors), destroyed first.
    std::unique_ptr<VmControl> control;
    std::unique_ptr<monitor::Monitor> monitor;
    std::vector<std::shared_ptr<std::unique_ptr<monitor::MonitorClient>>> mux_clients;
    std::vector<int> monitor_fds; // pty masters
    ~Vm()
    {
        // The serial links' Ctrl-A callbacks share these holders: empty them
        // (destroying the clients) while the monitor they use still exists.
        for (auto& client : mux_clients)
            client->reset();
        mux_clients.clear();
        monitor.reset();
        for (int fd : monitor_fds)
            ::close(fd);
        // Chardevs stop delivering input before the links they call die.
        for (auto& c : chardevs)
            if (c)
                c->detach();
    }
};

// Phase 3: chardevs, the board and its devices (ClockMode::Host), serial
// links, and the mux actions for Ctrl-A. `quit` ends the run loop.
Result<std::unique_ptr<Vm>> build_vm(const MachineConfig& cfg, EventLoop& loop, std::function<void(int)> quit);

// Phase 4: loads the kernel, creates the vCPU and puts it at the entry.
Result<void> realize_vm(Vm& vm);

// System reset: devices, the kernel reloaded (direct boot has no firmware
// to do it), the vCPU back at the entry point.
Result<void> reboot_vm(Vm& vm);

// Phase 5: runs the vCPU thread and the event loop until the VM ends;
// returns the exit status.
int run_vm(Vm& vm, EventLoop& loop);

} // namespace kiln::system
