// Phase 2 of start-up: ParsedArgs -> MachineConfig, a plain description of
// the VM with every value checked. Nothing after this phase reads
// command-line strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chardev/chardev_spec.h"
#include "hw/block/drive_config.h"
#include "system/cli_parse.h"
#include "system/monitor_setup.h"
#include "util/result.h"

namespace kiln::system {

enum class AccelKind { Interp, Kvm };
enum class RtcBase { Utc, Localtime, Date };

struct MachineConfig {
    // Informational requests: print and exit 0.
    bool show_help = false;
    bool show_version = false;
    std::string help_topic; // "-machine help", "-cpu help", "-d help", "-accel help"

    uint64_t ram_bytes = 128ull << 20; // QEMU's default
    unsigned cpus = 1;
    std::vector<AccelKind> accels = {AccelKind::Interp}; // tried in order
    bool tcg_alias = false;          // -accel tcg given: runs the interpreter
    std::string kvm_device = "/dev/kvm"; // -accel kvm,device=PATH
    bool interp_jit = true; // -accel interp,jit=on|off: the interpreter's JIT tier
    bool kvmclock = true;                // -cpu MODEL,-kvmclock turns it off (KVM only)
    std::string cpu_model = "max";
    std::string kernel, initrd, append;
    std::vector<chardev::ChardevSpec> serials; // index = COM port
    bool nographic = false;
    bool no_reboot = false;
    bool no_shutdown = false;
    bool start_paused = false;
    bool daemonize = false;
    std::string name;          // -name guest=
    std::string process_name;  // -name process=: the process's name (ps, top)
    bool debug_threads = false; // -name debug-threads=on: threads named by role
    std::string pidfile;
    std::string log_file;
    std::string log_items;
    RtcBase rtc_base = RtcBase::Utc;
    int64_t rtc_date_epoch_s = 0; // for RtcBase::Date
    std::vector<std::string> notes; // warnings to print (e.g. tcg alias)
    hw::DiskSetConfig disks;        // -drive, -hdX, -cdrom, -snapshot, disk -device
    MonitorConfig monitors;         // -monitor, -qmp, -mon, -chardev
};

Result<MachineConfig> build_machine_config(const ParsedArgs& args);

// -rtc base=: "utc", "localtime" or "2006-06-17T16:01:21" / "2006-06-17".
Result<int64_t> parse_rtc_date(const std::string& text);
// Guest wall-clock seconds at VM start for the chosen base.
int64_t rtc_start_epoch_s(const MachineConfig& cfg, int64_t host_now_s);

} // namespace kiln::system
