#include "system/cli_table.h"

#include <array>

namespace kiln::system {

namespace {

constexpr OptionArg A = OptionArg::Required;
constexpr OptionArg N = OptionArg::None;
constexpr OptionStatus S = OptionStatus::Supported;
constexpr OptionStatus U = OptionStatus::Unsupported;

// Explicit list, alphabetical within each group.
constexpr std::array k_options = {
    // Implemented.
    OptionInfo{"D", A, S},          OptionInfo{"M", A, S},         OptionInfo{"S", N, S},
    OptionInfo{"accel", A, S},      OptionInfo{"append", A, S},    OptionInfo{"cpu", A, S},
    OptionInfo{"d", A, S},          OptionInfo{"daemonize", N, S}, OptionInfo{"display", A, S},
    OptionInfo{"enable-kvm", N, S}, OptionInfo{"h", N, S},         OptionInfo{"help", N, S},
    OptionInfo{"initrd", A, S},     OptionInfo{"kernel", A, S},    OptionInfo{"m", A, S},
    OptionInfo{"machine", A, S},    OptionInfo{"name", A, S},      OptionInfo{"no-reboot", N, S},
    OptionInfo{"no-shutdown", N, S}, OptionInfo{"nodefaults", N, S}, OptionInfo{"nographic", N, S},
    OptionInfo{"pidfile", A, S},    OptionInfo{"rtc", A, S},       OptionInfo{"serial", A, S},
    OptionInfo{"smp", A, S},        OptionInfo{"version", N, S},
    // QEMU options Kiln does not implement (yet).
    OptionInfo{"L", A, U},          OptionInfo{"acpitable", A, U}, OptionInfo{"action", A, U},
    OptionInfo{"add-fd", A, U},     OptionInfo{"alt-grab", N, U},  OptionInfo{"audio", A, U},
    OptionInfo{"audiodev", A, U},   OptionInfo{"bios", A, U},      OptionInfo{"blockdev", A, U},
    OptionInfo{"boot", A, U},       OptionInfo{"cdrom", A, S},     OptionInfo{"chardev", A, S},
    OptionInfo{"chroot", A, U},     OptionInfo{"compat", A, U},    OptionInfo{"ctrl-grab", N, U},
    OptionInfo{"curses", N, U},     OptionInfo{"device", A, S},    OptionInfo{"drive", A, S},
    OptionInfo{"dtb", A, U},        OptionInfo{"echr", A, U},      OptionInfo{"fda", A, U},
    OptionInfo{"fdb", A, U},        OptionInfo{"fsdev", A, U},     OptionInfo{"full-screen", N, U},
    OptionInfo{"fw_cfg", A, U},     OptionInfo{"g", A, U},         OptionInfo{"gdb", A, U},
    OptionInfo{"global", A, U},     OptionInfo{"hda", A, S},       OptionInfo{"hdb", A, S},
    OptionInfo{"hdc", A, S},        OptionInfo{"hdd", A, S},       OptionInfo{"icount", A, U},
    OptionInfo{"incoming", A, U},   OptionInfo{"iscsi", A, U},     OptionInfo{"k", A, U},
    OptionInfo{"loadvm", A, U},     OptionInfo{"mem-path", A, U},  OptionInfo{"mem-prealloc", N, U},
    OptionInfo{"mon", A, S},        OptionInfo{"monitor", A, S},   OptionInfo{"msg", A, U},
    OptionInfo{"mtdblock", A, U},   OptionInfo{"net", A, U},       OptionInfo{"netdev", A, U},
    OptionInfo{"nic", A, U},        OptionInfo{"no-acpi", N, U},   OptionInfo{"no-hpet", N, U},
    OptionInfo{"no-user-config", N, U}, OptionInfo{"numa", A, U},  OptionInfo{"object", A, U},
    OptionInfo{"option-rom", A, U}, OptionInfo{"overcommit", A, U}, OptionInfo{"parallel", A, U},
    OptionInfo{"pflash", A, U},     OptionInfo{"plugin", A, U},    OptionInfo{"portrait", N, U},
    OptionInfo{"preconfig", N, U},  OptionInfo{"qmp", A, S},       OptionInfo{"qmp-pretty", A, U},
    OptionInfo{"readconfig", A, U}, OptionInfo{"rotate", A, U},    OptionInfo{"runas", A, U},
    OptionInfo{"s", N, U},          OptionInfo{"sandbox", A, U},   OptionInfo{"sd", A, U},
    OptionInfo{"sdl", N, U},        OptionInfo{"semihosting", N, U}, OptionInfo{"set", A, U},
    OptionInfo{"smbios", A, U},     OptionInfo{"snapshot", N, S},  OptionInfo{"spice", A, U},
    OptionInfo{"tpmdev", A, U},     OptionInfo{"trace", A, U},     OptionInfo{"usb", N, U},
    OptionInfo{"usbdevice", A, U},  OptionInfo{"uuid", A, U},      OptionInfo{"vga", A, U},
    OptionInfo{"virtfs", A, U},     OptionInfo{"vnc", A, U},       OptionInfo{"watchdog-action", A, U},
    OptionInfo{"win2k-hack", N, U}, OptionInfo{"writeconfig", A, U}, OptionInfo{"xen-domid", A, U},
};

} // namespace

const OptionInfo* find_option(std::string_view name)
{
    for (const OptionInfo& o : k_options)
        if (o.name == name)
            return &o;
    return nullptr;
}

} // namespace kiln::system
