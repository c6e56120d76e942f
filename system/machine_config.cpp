#include "system/machine_config.h"

#include <ctime>

#include "system/drive_options.h"
#include "util/options.h"
#include "util/size.h"

namespace kiln::system {

namespace {

constexpr uint64_t k_max_ram_bytes = 1ull << 40; // 1 TiB

Error opt_error(const std::string& opt, const std::string& value, const std::string& what)
{
    return Error::invalid("-" + opt + " " + value + ": " + what);
}

Result<uint64_t> parse_ram(const std::string& value)
{
    std::string size_text = value;
    if (value.find('=') != std::string::npos || value.find(',') != std::string::npos) {
        auto opts = TRY(OptionList::parse(value, "size"));
        for (auto& [k, v] : opts.entries())
            if (k != "size")
                return opt_error("m", value, "option '" + k + "' is not supported (only size=)");
        auto s = opts.get("size");
        if (!s)
            return opt_error("m", value, "missing size (expected a size such as 512M or 2G)");
        size_text = *s;
    }
    auto bytes = parse_size(size_text, 1ull << 20);
    if (!bytes.ok())
        return opt_error("m", value, "invalid RAM size '" + size_text + "' (expected a size such as 512M or 2G)");
    uint64_t b = bytes.value();
    if (b < (2ull << 20))
        return opt_error("m", value, "RAM size must be at least 2 MiB");
    if (b > k_max_ram_bytes)
        return opt_error("m", value, "RAM size must be at most 1 TiB");
    return (b + 0xfff) & ~uint64_t(0xfff);
}

Result<unsigned> parse_smp(const std::string& value)
{
    auto opts = OptionList::parse(value, "cpus");
    if (!opts.ok())
        return opt_error("smp", value, "invalid value (expected a number of CPUs)");
    uint64_t cpus = 1;
    for (auto& [k, v] : opts.value().entries()) {
        if (k != "cpus" && k != "sockets" && k != "cores" && k != "threads" && k != "maxcpus" && k != "dies")
            return opt_error("smp", value, "unknown option '" + k + "'");
        char* end = nullptr;
        unsigned long long n = strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end || n == 0)
            return opt_error("smp", value, "invalid number '" + v + "' for '" + k + "' (expected a positive integer)");
        if (k == "cpus" || k == "maxcpus")
            cpus = std::max<uint64_t>(cpus, n);
        else if (n > 1)
            cpus = std::max<uint64_t>(cpus, n);
    }
    if (cpus != 1)
        return opt_error("smp", value, "only one CPU is supported (Kiln has no SMP yet)");
    return 1u;
}

// -cpu MODEL,FLAGS: only kvmclock so far (+kvmclock, -kvmclock,
// kvmclock=on|off); it matters only under KVM.
Result<void> parse_cpu_flags(MachineConfig& cfg, const std::string& value, const std::string& flags)
{
    size_t start = 0;
    while (start <= flags.size()) {
        size_t comma = flags.find(',', start);
        std::string f = flags.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (f == "+kvmclock" || f == "kvmclock=on" || f == "kvmclock")
            cfg.kvmclock = true;
        else if (f == "-kvmclock" || f == "kvmclock=off")
            cfg.kvmclock = false;
        else
            return opt_error("cpu", value, "CPU feature flags are not supported yet"); // but kvmclock
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return {};
}

Result<void> parse_accel(MachineConfig& cfg, const std::vector<std::string>& values, bool enable_kvm)
{
    std::vector<AccelKind> out;
    if (enable_kvm)
        out.push_back(AccelKind::Kvm);
    for (const std::string& value : values) {
        auto opts = OptionList::parse(value, "accel");
        if (!opts.ok())
            return opt_error("accel", value, opts.error().message());
        std::string names = opts.value().get("accel").value_or("");
        for (auto& [k, v] : opts.value().entries())
            if (k != "accel" && k != "thread" && k != "device" && k != "jit")
                return opt_error("accel", value, "option '" + k + "' is not supported");
        if (auto device = opts.value().get("device")) {
            if (names != "kvm")
                return opt_error("accel", value, "option 'device' belongs to kvm only");
            cfg.kvm_device = *device;
        }
        if (auto jit = opts.value().get("jit")) {
            if (names != "interp" && names != "tcg")
                return opt_error("accel", value, "option 'jit' belongs to interp (and tcg) only");
            if (*jit == "on" || *jit == "yes" || *jit == "true")
                cfg.interp_jit = true;
            else if (*jit == "off" || *jit == "no" || *jit == "false")
                cfg.interp_jit = false;
            else
                return opt_error("accel", value, "Parameter 'jit' expects 'on' or 'off'");
        }
        // QEMU's old form "kvm:tcg" lists fallbacks.
        size_t start = 0;
        while (start <= names.size()) {
            size_t colon = names.find(':', start);
            std::string n = names.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
            if (n == "kvm") {
                out.push_back(AccelKind::Kvm);
            } else if (n == "interp") {
                out.push_back(AccelKind::Interp);
            } else if (n == "tcg") {
                out.push_back(AccelKind::Interp);
                cfg.tcg_alias = true;
            } else if (n == "help") {
                cfg.help_topic = "accel";
            } else {
                return opt_error("accel", value, "invalid accelerator '" + n + "' (expected kvm, interp or tcg)");
            }
            if (colon == std::string::npos)
                break;
            start = colon + 1;
        }
    }
    if (!out.empty())
        cfg.accels = out;
    if (cfg.tcg_alias)
        cfg.notes.push_back("-accel tcg: Kiln has no TCG; using its interpreter instead");
    return {};
}

Result<void> parse_machine(MachineConfig& cfg, const std::string& value, std::vector<std::string>& accels)
{
    auto opts = OptionList::parse(value, "type");
    if (!opts.ok())
        return opt_error("machine", value, opts.error().message());
    for (auto& [k, v] : opts.value().entries()) {
        if (k == "type") {
            if (v == "help") {
                cfg.help_topic = "machine";
            } else if (v != "pc" && v.rfind("pc-i440fx-", 0) != 0) {
                return opt_error("machine", value, "unsupported machine type '" + v + "' (only 'pc' is available)");
            }
        } else if (k == "accel") {
            accels.push_back(v);
        } else {
            return opt_error("machine", value, "property '" + k + "' is not supported");
        }
    }
    return {};
}

Result<void> parse_rtc(MachineConfig& cfg, const std::string& value)
{
    auto opts = OptionList::parse(value);
    if (!opts.ok())
        return opt_error("rtc", value, opts.error().message());
    for (auto& [k, v] : opts.value().entries()) {
        if (k == "base") {
            if (v == "utc") {
                cfg.rtc_base = RtcBase::Utc;
            } else if (v == "localtime") {
                cfg.rtc_base = RtcBase::Localtime;
            } else {
                auto t = parse_rtc_date(v);
                if (!t.ok())
                    return opt_error("rtc", value, "invalid base '" + v
                                                       + "' (expected utc, localtime or a date such as 2006-06-17T16:01:21)");
                cfg.rtc_base = RtcBase::Date;
                cfg.rtc_date_epoch_s = t.value();
            }
        } else if (k == "clock") {
            if (v != "host" && v != "rt" && v != "vm")
                return opt_error("rtc", value, "invalid clock '" + v + "' (expected host, rt or vm)");
            // The RTC always follows the virtual clock in Kiln (clock=vm).
        } else if (k == "driftfix") {
            if (v != "none" && v != "slew")
                return opt_error("rtc", value, "invalid driftfix '" + v + "' (expected none or slew)");
        } else {
            return opt_error("rtc", value, "unknown option '" + k + "'");
        }
    }
    return {};
}

Result<void> parse_display(MachineConfig& cfg, const std::string& value)
{
    std::string type = value.substr(0, value.find(','));
    if (type == "help") {
        cfg.help_topic = "display";
        return {};
    }
    if (type != "none")
        return opt_error("display", value, "unsupported display '" + type + "' (only 'none' is available)");
    return {};
}

// -name [guest=]NAME[,process=PNAME][,debug-threads=on|off]
Result<void> parse_name(MachineConfig& cfg, const std::string& value)
{
    auto opts = OptionList::parse(value, "guest");
    if (!opts.ok())
        return opt_error("name", value, opts.error().message());
    for (auto& [k, v] : opts.value().entries()) {
        if (k == "guest") {
            cfg.name = v;
        } else if (k == "process") {
            cfg.process_name = v;
        } else if (k == "debug-threads") {
            auto b = parse_bool_option(k, v);
            if (!b.ok())
                return opt_error("name", value, b.error().message());
            cfg.debug_threads = b.value();
        } else {
            return opt_error("name", value, "Invalid parameter '" + k + "'");
        }
    }
    return {};
}

} // namespace

Result<int64_t> parse_rtc_date(const std::string& text)
{
    struct tm tm = {};
    const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) {
        tm = {};
        end = strptime(text.c_str(), "%Y-%m-%d", &tm);
        if (!end || *end)
            return Error::invalid("invalid date '" + text + "'");
    }
    if (tm.tm_year < 70)
        return Error::invalid("date '" + text + "' is before 1970");
    return int64_t(timegm(&tm));
}

int64_t rtc_start_epoch_s(const MachineConfig& cfg, int64_t host_now_s)
{
    switch (cfg.rtc_base) {
    case RtcBase::Utc:
        return host_now_s;
    case RtcBase::Localtime: {
        time_t t = time_t(host_now_s);
        struct tm local;
        localtime_r(&t, &local);
        return host_now_s + local.tm_gmtoff;
    }
    case RtcBase::Date:
        return cfg.rtc_date_epoch_s;
    }
    return host_now_s;
}

Result<MachineConfig> build_machine_config(const ParsedArgs& args)
{
    MachineConfig cfg;
    cfg.show_help = args.has("help");
    cfg.show_version = args.has("version");
    if (cfg.show_help || cfg.show_version)
        return cfg;

    if (auto* m = args.last("m"))
        cfg.ram_bytes = TRY(parse_ram(*m));
    if (auto* s = args.last("smp"))
        cfg.cpus = TRY(parse_smp(*s));
    std::vector<std::string> accels = args.all("accel");
    for (const std::string& m : args.all("machine"))
        TRY(parse_machine(cfg, m, accels));
    TRY(parse_accel(cfg, accels, args.has("enable-kvm")));
    if (auto* c = args.last("cpu")) {
        std::string model = c->substr(0, c->find(','));
        if (model.empty())
            return opt_error("cpu", *c, "missing CPU model name");
        if (model == "help")
            cfg.help_topic = "cpu";
        if (c->find(',') != std::string::npos)
            TRY(parse_cpu_flags(cfg, *c, c->substr(c->find(',') + 1)));
        cfg.cpu_model = model;
    }
    if (auto* k = args.last("kernel"))
        cfg.kernel = *k;
    if (auto* i = args.last("initrd"))
        cfg.initrd = *i;
    if (auto* a = args.last("append"))
        cfg.append = *a;
    if (!cfg.initrd.empty() && cfg.kernel.empty())
        return Error::invalid("-initrd only allowed with -kernel option");
    if (args.has("append") && cfg.kernel.empty())
        return Error::invalid("-append only allowed with -kernel option");

    std::vector<DiskArg> disk_args;
    for (const ParsedOption& o : args.options)
        if (is_disk_option(o.name) || o.name == "device")
            disk_args.push_back({o.name, o.value});
    cfg.disks = TRY(parse_disk_args(disk_args));

    cfg.nographic = args.has("nographic");
    for (const std::string& d : args.all("display"))
        TRY(parse_display(cfg, d));
    cfg.no_reboot = args.has("no-reboot");
    cfg.no_shutdown = args.has("no-shutdown");
    cfg.start_paused = args.has("S");
    cfg.daemonize = args.has("daemonize");
    if (auto* n = args.last("name"))
        TRY(parse_name(cfg, *n));
    if (auto* p = args.last("pidfile"))
        cfg.pidfile = *p;
    if (auto* d = args.last("D"))
        cfg.log_file = *d;
    if (auto* d = args.last("d")) {
        if (*d == "help")
            cfg.help_topic = "log";
        cfg.log_items = *d;
    }
    if (auto* r = args.last("rtc"))
        TRY(parse_rtc(cfg, *r));

    // Serial ports: explicit -serial, else the defaults QEMU would pick
    // (mon:stdio with -nographic). Kiln has no graphical console, so
    // without -nographic the default is stdio too (QEMU: a vc).
    cfg.monitors = TRY(parse_monitor_options(args));
    std::vector<std::string> serials = args.all("serial");
    if (serials.size() > 4)
        return Error::invalid("-serial " + serials[4] + ": too many serial ports (at most 4)");
    for (const std::string& s : serials) {
        if (s.rfind("chardev:", 0) == 0) {
            cfg.serials.push_back(TRY(resolve_serial_chardev(cfg.monitors, s)));
            continue;
        }
        auto spec = chardev::parse_chardev_spec(s);
        if (!spec.ok())
            return Error::invalid("-serial " + s + ": " + spec.error().message());
        cfg.serials.push_back(spec.value());
    }
    if (serials.empty() && !args.has("nodefaults")) {
        chardev::ChardevSpec def;
        def.kind = chardev::ChardevKind::Stdio;
        // QEMU: -nographic shares stdio with the monitor unless a
        // monitor option was given.
        def.mux_monitor = cfg.nographic && !cfg.monitors.explicit_monitor;
        cfg.serials.push_back(def);
    }
    unsigned stdio_users = 0;
    for (auto& s : cfg.serials)
        stdio_users += s.uses_stdio();
    if (stdio_users > 1)
        return Error::invalid("-serial: stdio can be used by only one serial port");
    if (stdio_users + monitor_stdio_users(cfg.monitors) > 1)
        return Error::invalid("cannot use stdio by multiple character devices");
    stdio_users += monitor_stdio_users(cfg.monitors);
    if (cfg.daemonize && stdio_users)
        return Error::invalid("-daemonize cannot be used with a stdio serial console (-nographic or -serial stdio)");
    if (cfg.help_topic.empty() && cfg.kernel.empty())
        return Error::invalid("no kernel given: Kiln has no firmware yet, so -kernel is required");
    return cfg;
}

} // namespace kiln::system
