#include <gtest/gtest.h>

#include "system/cli_parse.h"
#include "system/machine_config.h"

namespace kiln::system {
namespace {

Result<MachineConfig> config(std::vector<std::string> argv)
{
    auto parsed = parse_args(argv);
    if (!parsed.ok())
        return parsed.error();
    return build_machine_config(parsed.value());
}

std::string error_of(std::vector<std::string> argv)
{
    auto c = config(std::move(argv));
    return c.ok() ? std::string("(no error)") : c.error().message();
}

TEST(CliParse, GrammarErrors)
{
    EXPECT_EQ(error_of({"-foo"}), "-foo: invalid option");
    EXPECT_EQ(error_of({"-fda", "x.img"}), "-fda: unsupported option");
    EXPECT_EQ(error_of({"-usb"}), "-usb: unsupported option");
    EXPECT_EQ(error_of({"-m"}), "-m: requires an argument");
    // A bare argument is the first hard disk, as in QEMU.
    auto bare = parse_args({"disk.img"});
    ASSERT_TRUE(bare.ok());
    ASSERT_NE(bare.value().last("hda"), nullptr);
    EXPECT_EQ(*bare.value().last("hda"), "disk.img");
    EXPECT_EQ(error_of({"-drive", "file=x.img,if=scsi"}),
              "-drive file=x.img,if=scsi: Kiln does not support if=scsi (only ide, virtio and none)");
}

TEST(CliParse, DoubleDashAndAliases)
{
    auto p = parse_args({"--m", "256", "-M", "pc", "-h"});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p.value().last("m"), "256");
    EXPECT_EQ(*p.value().last("machine"), "pc");
    EXPECT_TRUE(p.value().has("help"));
}

TEST(MachineConfig, Defaults)
{
    auto c = config({"-kernel", "bz"});
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c.value().ram_bytes, 128ull << 20);
    EXPECT_EQ(c.value().accels, std::vector<AccelKind>{AccelKind::Interp});
    ASSERT_EQ(c.value().serials.size(), 1u);
    EXPECT_EQ(c.value().serials[0].kind, chardev::ChardevKind::Stdio);
    EXPECT_FALSE(c.value().serials[0].mux_monitor);
}

TEST(MachineConfig, MemorySizes)
{
    EXPECT_EQ(config({"-kernel", "k", "-m", "512"}).value().ram_bytes, 512ull << 20);
    EXPECT_EQ(config({"-kernel", "k", "-m", "2G"}).value().ram_bytes, 2ull << 30);
    EXPECT_EQ(config({"-kernel", "k", "-m", "size=1G"}).value().ram_bytes, 1ull << 30);
    EXPECT_EQ(error_of({"-kernel", "k", "-m", "lots"}),
              "-m lots: invalid RAM size 'lots' (expected a size such as 512M or 2G)");
    EXPECT_EQ(error_of({"-kernel", "k", "-m", "1"}), "-m 1: RAM size must be at least 2 MiB");
    EXPECT_EQ(error_of({"-kernel", "k", "-m", "size=1G,maxmem=4G"}),
              "-m size=1G,maxmem=4G: option 'maxmem' is not supported (only size=)");
}

TEST(MachineConfig, SmpOnlyOne)
{
    EXPECT_TRUE(config({"-kernel", "k", "-smp", "1"}).ok());
    EXPECT_TRUE(config({"-kernel", "k", "-smp", "cpus=1,sockets=1"}).ok());
    EXPECT_EQ(error_of({"-kernel", "k", "-smp", "4"}), "-smp 4: only one CPU is supported (Kiln has no SMP yet)");
    EXPECT_EQ(error_of({"-kernel", "k", "-smp", "x"}),
              "-smp x: invalid number 'x' for 'cpus' (expected a positive integer)");
}

TEST(MachineConfig, Accelerators)
{
    auto kvm = config({"-kernel", "k", "-enable-kvm"});
    EXPECT_EQ(kvm.value().accels, std::vector<AccelKind>{AccelKind::Kvm});
    auto tcg = config({"-kernel", "k", "-accel", "tcg"});
    EXPECT_EQ(tcg.value().accels, std::vector<AccelKind>{AccelKind::Interp});
    ASSERT_EQ(tcg.value().notes.size(), 1u);
    EXPECT_EQ(tcg.value().notes[0], "-accel tcg: Kiln has no TCG; using its interpreter instead");
    auto both = config({"-kernel", "k", "-machine", "pc,accel=kvm:tcg"});
    EXPECT_EQ(both.value().accels, (std::vector<AccelKind>{AccelKind::Kvm, AccelKind::Interp}));
    EXPECT_EQ(error_of({"-kernel", "k", "-accel", "hvf"}),
              "-accel hvf: invalid accelerator 'hvf' (expected kvm, interp or tcg)");
}

TEST(MachineConfig, InterpreterJit)
{
    EXPECT_TRUE(config({"-kernel", "k"}).value().interp_jit);
    EXPECT_FALSE(config({"-kernel", "k", "-accel", "interp,jit=off"}).value().interp_jit);
    EXPECT_FALSE(config({"-kernel", "k", "-accel", "tcg,jit=no"}).value().interp_jit);
    EXPECT_TRUE(config({"-kernel", "k", "-accel", "interp,jit=on"}).value().interp_jit);
    EXPECT_EQ(error_of({"-kernel", "k", "-accel", "interp,jit=maybe"}),
              "-accel interp,jit=maybe: Parameter 'jit' expects 'on' or 'off'");
    EXPECT_EQ(error_of({"-kernel", "k", "-accel", "kvm,jit=on"}),
              "-accel kvm,jit=on: option 'jit' belongs to interp (and tcg) only");
}

TEST(MachineConfig, MachineDisplayCpu)
{
    EXPECT_TRUE(config({"-kernel", "k", "-machine", "pc-i440fx-7.2"}).ok());
    EXPECT_EQ(error_of({"-kernel", "k", "-machine", "q35"}),
              "-machine q35: unsupported machine type 'q35' (only 'pc' is available)");
    EXPECT_EQ(error_of({"-kernel", "k", "-display", "gtk"}),
              "-display gtk: unsupported display 'gtk' (only 'none' is available)");
    EXPECT_EQ(config({"-machine", "help"}).value().help_topic, "machine");
    EXPECT_EQ(error_of({"-kernel", "k", "-cpu", "max,+avx"}), "-cpu max,+avx: CPU feature flags are not supported yet");
}

TEST(MachineConfig, KernelRules)
{
    EXPECT_EQ(error_of({}), "no kernel given: Kiln has no firmware yet, so -kernel is required");
    EXPECT_EQ(error_of({"-initrd", "rd"}), "-initrd only allowed with -kernel option");
    EXPECT_EQ(error_of({"-append", "quiet"}), "-append only allowed with -kernel option");
    auto c = config({"-kernel", "bz", "-initrd", "rd", "-append", "console=ttyS0"});
    EXPECT_EQ(c.value().initrd, "rd");
    EXPECT_EQ(c.value().append, "console=ttyS0");
}

TEST(MachineConfig, SerialPorts)
{
    auto ng = config({"-kernel", "k", "-nographic"});
    ASSERT_EQ(ng.value().serials.size(), 1u);
    EXPECT_TRUE(ng.value().serials[0].mux_monitor);
    auto many = config({"-kernel", "k", "-serial", "null", "-serial", "file:/tmp/x", "-serial", "none", "-serial",
                        "unix:/tmp/s,server,nowait"});
    ASSERT_TRUE(many.ok()) << many.error().message();
    auto& s = many.value().serials;
    EXPECT_EQ(s[0].kind, chardev::ChardevKind::Null);
    EXPECT_EQ(s[1].path, "/tmp/x");
    EXPECT_EQ(s[2].kind, chardev::ChardevKind::None);
    EXPECT_TRUE(s[3].server);
    EXPECT_FALSE(s[3].wait);
    EXPECT_EQ(error_of({"-kernel", "k", "-serial", "null", "-serial", "null", "-serial", "null", "-serial", "null",
                        "-serial", "null"}),
              "-serial null: too many serial ports (at most 4)");
    EXPECT_EQ(error_of({"-kernel", "k", "-serial", "tcp:1234"}),
              "-serial tcp:1234: 'tcp:1234' is not a valid char driver (expected stdio, mon:stdio, file:PATH, "
              "unix:PATH, pty, null or none)");
    EXPECT_EQ(error_of({"-kernel", "k", "-serial", "stdio", "-serial", "stdio"}),
              "-serial: stdio can be used by only one serial port");
    EXPECT_EQ(error_of({"-kernel", "k", "-nographic", "-daemonize"}),
              "-daemonize cannot be used with a stdio serial console (-nographic or -serial stdio)");
    EXPECT_TRUE(config({"-kernel", "k", "-nodefaults"}).value().serials.empty());
}

TEST(MachineConfig, RtcBase)
{
    auto lt = config({"-kernel", "k", "-rtc", "base=localtime,clock=host"});
    EXPECT_EQ(lt.value().rtc_base, RtcBase::Localtime);
    auto d = config({"-kernel", "k", "-rtc", "base=2006-06-17T16:01:21"});
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value().rtc_base, RtcBase::Date);
    EXPECT_EQ(rtc_start_epoch_s(d.value(), 0), 1150560081);
    auto day = config({"-kernel", "k", "-rtc", "base=2006-06-17"});
    EXPECT_EQ(rtc_start_epoch_s(day.value(), 0), 1150502400);
    auto utc = config({"-kernel", "k", "-rtc", "base=utc"});
    EXPECT_EQ(rtc_start_epoch_s(utc.value(), 12345), 12345);
    EXPECT_EQ(error_of({"-kernel", "k", "-rtc", "base=yesterday"}),
              "-rtc base=yesterday: invalid base 'yesterday' (expected utc, localtime or a date such as "
              "2006-06-17T16:01:21)");
    EXPECT_EQ(error_of({"-kernel", "k", "-rtc", "speed=2"}), "-rtc speed=2: unknown option 'speed'");
}

TEST(MachineConfig, RunControlAndLogging)
{
    auto c = config({"-kernel", "k", "-S", "-no-reboot", "-no-shutdown", "-name", "guest=vm1,debug-threads=on",
                     "-pidfile", "/tmp/p", "-D", "/tmp/log", "-d", "int,guest_errors"});
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_TRUE(c.value().start_paused);
    EXPECT_TRUE(c.value().no_reboot);
    EXPECT_TRUE(c.value().no_shutdown);
    EXPECT_EQ(c.value().name, "vm1");
    EXPECT_EQ(c.value().pidfile, "/tmp/p");
    EXPECT_EQ(c.value().log_file, "/tmp/log");
    EXPECT_EQ(c.value().log_items, "int,guest_errors");
}

TEST(MachineConfig, NameKeys)
{
    auto c = config({"-kernel", "k", "-name", "vm2,process=kiln-vm2,debug-threads=on"});
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c.value().name, "vm2");
    EXPECT_EQ(c.value().process_name, "kiln-vm2");
    EXPECT_TRUE(c.value().debug_threads);
    EXPECT_FALSE(config({"-kernel", "k", "-name", "vm"}).value().debug_threads);
    EXPECT_EQ(error_of({"-kernel", "k", "-name", "vm,color=red"}), "-name vm,color=red: Invalid parameter 'color'");
    EXPECT_NE(error_of({"-kernel", "k", "-name", "vm,debug-threads=maybe"}).find("-name vm,debug-threads=maybe: "),
              std::string::npos);
}

TEST(MachineConfig, VersionAndHelpNeedNothingElse)
{
    EXPECT_TRUE(config({"-version"}).value().show_version);
    EXPECT_TRUE(config({"-help"}).value().show_help);
}

} // namespace
} // namespace kiln::system
