#include <pthread.h>

#include <csignal>
#include <ctime>

#include "system/vm.h"
#include "util/log.h"

namespace kiln::system {

Result<std::unique_ptr<Vm>> build_vm(const MachineConfig& cfg, EventLoop& loop, std::function<void(int)> quit)
{
    auto vm = std::make_unique<Vm>();
    vm->config = cfg;
    hw::PcConfig pc;
    pc.ram_bytes = cfg.ram_bytes;
    pc.rtc_base_epoch_s = rtc_start_epoch_s(cfg, int64_t(time(nullptr)));
    pc.clock_mode = hw::ClockMode::Host;

    Vm* raw = vm.get();
    vm->control = std::make_unique<VmControl>(*vm, loop);
    for (size_t i = 0; i < cfg.serials.size(); i++) {
        const auto& spec = cfg.serials[i];
        std::string label = "serial" + std::to_string(i);
        auto dev = chardev::open_chardev(spec, label);
        if (!dev.ok())
            return Error(dev.error().kind(), "-serial: " + dev.error().message());
        vm->chardevs.push_back(std::move(dev).value());
        chardev::Chardev* c = vm->chardevs.back().get();
        if (!c)
            continue; // -serial none: no port here
        std::unique_ptr<chardev::MuxFilter> mux;
        if (spec.mux_monitor) {
            chardev::MuxActions actions;
            actions.print = [c](const std::string& s) {
                c->write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
            };
            actions.exit = [raw, c, quit] {
                static const char msg[] = "Kiln: Terminated\r\n";
                c->write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(msg), sizeof msg - 1));
                raw->quit_requested_by_user = true;
                quit(0);
            };
            size_t link_index = vm->serial_links.size();
            actions.toggle_monitor = [raw, c, link_index] {
                if (link_index < raw->serial_links.size() && raw->serial_links[link_index]->toggle_monitor_focus())
                    return;
                static const char msg[] = "\r\nkiln: no monitor on this console\r\n";
                c->write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(msg), sizeof msg - 1));
            };
            actions.send_break = [raw, i] {
                if (auto* uart = raw->machine ? raw->machine->serial(unsigned(i)) : nullptr) {
                    hw::MachineLock lk(*raw->machine);
                    uart->send_break();
                }
            };
            actions.sync_disks = [] {}; // no -snapshot disks yet
            mux = std::make_unique<chardev::MuxFilter>(std::move(actions));
        }
        vm->serial_links.push_back(std::make_unique<SerialLink>(*c, std::move(mux)));
        pc.serial[i] = vm->serial_links.back().get();
        pc.serial_present[i] = true;
    }

    vm->machine = TRY(hw::PcMachine::create(pc));
    {
        // Block-layer worker threads start here; they must not take the
        // signals run_vm() handles through its signalfd.
        sigset_t signals, old;
        sigemptyset(&signals);
        for (int sig : {SIGINT, SIGTERM, SIGHUP})
            sigaddset(&signals, sig);
        pthread_sigmask(SIG_BLOCK, &signals, &old);
        vm->block_pool = std::make_unique<ThreadPool>(loop);
        vm->block_ctx = std::make_unique<block::BlockContext>(loop, *vm->block_pool);
        auto disks = loop.run_until_complete(hw::PcDisks::create(*vm->machine, *vm->block_ctx, cfg.disks, vm->control.get()));
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        vm->disks = TRY(std::move(disks));
    }
    size_t link = 0;
    for (size_t i = 0; i < cfg.serials.size(); i++) {
        if (!pc.serial_present[i])
            continue;
        SerialLink& l = *vm->serial_links[link++];
        l.connect(*vm->machine, *vm->machine->serial(unsigned(i)), loop);
        TRY(vm->chardevs[i]->attach(loop, [&l](std::span<const uint8_t> b) { l.input(b); }));
    }
    return vm;
}

} // namespace kiln::system
