// -monitor, -qmp, -mon and -chardev as QEMU spells them: what each becomes,
// QEMU's -nographic default, and one-line errors for bad values.
#include <gtest/gtest.h>

#include "system/keycodes.h"
#include "system/machine_config.h"

namespace kiln::system {
namespace {

Result<MachineConfig> config(std::vector<std::string> argv)
{
    argv.insert(argv.end(), { "-kernel", "k" });
    auto parsed = parse_args(argv);
    if (!parsed.ok())
        return std::move(parsed).error();
    return build_machine_config(parsed.value());
}

TEST(MonitorOptions, MonitorAndQmpSpellings)
{
    auto cfg = config({ "-monitor", "unix:/tmp/m.sock,server,nowait", "-qmp", "tcp:127.0.0.1:4444,server=on,wait=off",
        "-monitor", "telnet:127.0.0.1:5555,server,nowait", "-qmp", "stdio", "-serial", "null" });
    ASSERT_TRUE(cfg.ok()) << cfg.error().message();
    auto& eps = cfg.value().monitors.endpoints;
    ASSERT_EQ(eps.size(), 4u);
    EXPECT_EQ(eps[0].kind, MonitorEndpoint::Kind::Unix);
    EXPECT_EQ(eps[0].path, "/tmp/m.sock");
    EXPECT_EQ(eps[0].mode, MonitorMode::Readline);
    EXPECT_EQ(eps[0].label, "compat_monitor0");
    EXPECT_EQ(eps[1].kind, MonitorEndpoint::Kind::Tcp);
    EXPECT_EQ(eps[1].host, "127.0.0.1");
    EXPECT_EQ(eps[1].port, 4444);
    EXPECT_EQ(eps[1].mode, MonitorMode::Control);
    EXPECT_TRUE(eps[2].telnet);
    EXPECT_EQ(eps[3].kind, MonitorEndpoint::Kind::Stdio);
}

TEST(MonitorOptions, NographicPutsTheMonitorOnTheSerialMuxUnlessOneIsGiven)
{
    auto plain = config({ "-nographic" });
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(plain.value().serials.at(0).mux_monitor);
    auto with_qmp = config({ "-nographic", "-qmp", "unix:/tmp/q,server=on,wait=off" });
    ASSERT_TRUE(with_qmp.ok());
    EXPECT_FALSE(with_qmp.value().serials.at(0).mux_monitor);
    auto explicit_mux = config({ "-serial", "mon:stdio", "-qmp", "unix:/tmp/q,server=on,wait=off" });
    ASSERT_TRUE(explicit_mux.ok());
    EXPECT_TRUE(explicit_mux.value().serials.at(0).mux_monitor);
}

TEST(MonitorOptions, ChardevAndMon)
{
    auto cfg = config({ "-chardev", "socket,id=q,path=/tmp/q.sock,server=on,wait=off", "-mon", "chardev=q,mode=control",
        "-chardev", "stdio,id=c0,mux=on,signal=off", "-serial", "chardev:c0", "-mon", "c0", "-chardev", "pty,id=p",
        "-mon", "chardev=p,mode=readline" });
    ASSERT_TRUE(cfg.ok()) << cfg.error().message();
    auto& eps = cfg.value().monitors.endpoints;
    ASSERT_EQ(eps.size(), 3u);
    EXPECT_EQ(eps[0].kind, MonitorEndpoint::Kind::Unix);
    EXPECT_EQ(eps[0].mode, MonitorMode::Control);
    EXPECT_EQ(eps[0].label, "q");
    EXPECT_EQ(eps[1].kind, MonitorEndpoint::Kind::SerialMux);
    EXPECT_EQ(eps[2].kind, MonitorEndpoint::Kind::Pty);
    ASSERT_EQ(cfg.value().serials.size(), 1u);
    EXPECT_EQ(cfg.value().serials[0].kind, chardev::ChardevKind::Stdio);
    EXPECT_TRUE(cfg.value().serials[0].mux_monitor);
}

TEST(MonitorOptions, ErrorsNameTheOptionAndTheProblem)
{
    struct Case {
        std::vector<std::string> argv;
        std::string expected;
    } cases[] = {
        { { "-monitor", "vc" }, "-monitor vc: 'vc' is not a valid char driver" },
        { { "-qmp", "unix:/tmp/q" }, "must listen" },
        { { "-qmp", "tcp:127.0.0.1:99999,server=on" }, "invalid port" },
        { { "-monitor", "unix:/tmp/q,server,bogus=1" }, "Invalid parameter 'bogus'" },
        { { "-mon", "chardev=nope" }, "chardev \"nope\" not found" },
        { { "-mon", "mode=control" }, "Parameter 'chardev' is missing" },
        { { "-chardev", "socket,path=/tmp/x" }, "Parameter 'id' is missing" },
        { { "-chardev", "spice,id=s" }, "'spice' is not a valid char driver name" },
        { { "-chardev", "null,id=a", "-chardev", "null,id=a" }, "duplicate property 'id'" },
        { { "-monitor", "stdio", "-serial", "stdio" }, "cannot use stdio by multiple character devices" },
        { { "-serial", "chardev:zz" }, "chardev \"zz\" not found" },
    };
    for (auto& c : cases) {
        auto cfg = config(c.argv);
        ASSERT_FALSE(cfg.ok()) << c.argv[0] << " " << c.argv[1];
        EXPECT_NE(cfg.error().message().find(c.expected), std::string::npos) << cfg.error().message();
    }
}

TEST(Keycodes, NamesNumbersAndSet2)
{
    const KeyCode* a = key_by_qcode("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->number, 0x1e);
    EXPECT_EQ(set2_press(*a), (std::vector<uint8_t> { 0x1c }));
    EXPECT_EQ(set2_release(*a), (std::vector<uint8_t> { 0xf0, 0x1c }));
    const KeyCode* up = key_by_number(0xc8);
    ASSERT_NE(up, nullptr);
    EXPECT_STREQ(up->qcode, "up");
    EXPECT_EQ(set2_release(*up), (std::vector<uint8_t> { 0xe0, 0xf0, 0x75 }));
    EXPECT_EQ(key_by_qcode("nosuchkey"), nullptr);
    // Every name the monitor accepts for ctrl-alt-delete and F-keys is here.
    for (const char* name : { "ctrl", "alt", "delete", "f1", "f12", "ret", "spc", "esc", "tab", "kp_enter" })
        EXPECT_NE(key_by_qcode(name), nullptr) << name;
}

} // namespace
} // namespace kiln::system
