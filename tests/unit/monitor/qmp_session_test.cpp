// QMP protocol over the command table, transport-free; expected replies
// are QEMU 7.2's text for the same requests.
#include <gtest/gtest.h>

#include "monitor/json_stream.h"
#include "monitor/qmp_session.h"
#include "tests/unit/monitor/fake_machine.h"

namespace kiln::monitor {
namespace {

class QmpSessionTest : public ::testing::Test {
protected:
    testing::FakeMachine machine;
    CommandTable table = build_command_table();
    std::vector<std::string> out;
    QmpSession session { table, machine, [this](std::string_view s) { out.emplace_back(s); } };

    // Feeds one request and returns the single reply line without "\r\n".
    std::string ask(const std::string& request)
    {
        out.clear();
        session.feed(request + "\n");
        EXPECT_EQ(out.size(), 1u) << request;
        if (out.empty())
            return "";
        std::string line = out.back();
        EXPECT_EQ(line.substr(line.size() - 2), "\r\n");
        return line.substr(0, line.size() - 2);
    }
    void negotiate() { ASSERT_EQ(ask(R"({"execute":"qmp_capabilities"})"), R"({"return": {}})"); }
};

TEST_F(QmpSessionTest, GreetingAndNegotiation)
{
    session.start();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0],
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": "
        "\"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n");
    EXPECT_EQ(ask(R"({"execute":"query-status"})"),
        R"({"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}})");
    negotiate();
    EXPECT_EQ(ask(R"({"execute":"qmp_capabilities"})"),
        R"({"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}})");
}

TEST_F(QmpSessionTest, NegotiationAcceptsOobOnly)
{
    EXPECT_EQ(ask(R"({"execute":"qmp_capabilities","arguments":{"enable":["x"]}})"),
        R"({"error": {"class": "GenericError", "desc": "Parameter 'enable' does not accept value 'x'"}})");
    EXPECT_EQ(ask(R"({"execute":"qmp_capabilities","arguments":{"enable":["oob"]}})"), R"({"return": {}})");
    EXPECT_EQ(ask(R"({"exec-oob":"query-status","id":1})"),
        R"({"error": {"class": "GenericError", "desc": "The command query-status does not support OOB"}, "id": 1})");
    EXPECT_EQ(ask(R"({"execute":"query-status","exec-oob":"query-name"})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input member 'execute' clashes with 'exec-oob'"}})");
}

TEST_F(QmpSessionTest, ExecOobNeedsTheCapability)
{
    negotiate();
    EXPECT_EQ(ask(R"({"exec-oob":"query-status"})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}})");
}

TEST_F(QmpSessionTest, QueriesMatchQemuSchema)
{
    negotiate();
    EXPECT_EQ(ask(R"({"execute":"query-status","id":1})"),
        R"({"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 1})");
    EXPECT_EQ(ask(R"({"execute":"query-version","id":"a"})"),
        R"({"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": "a"})");
    EXPECT_EQ(ask(R"({"execute":"query-name"})"), R"({"return": {"name": "testvm"}})");
    EXPECT_EQ(ask(R"({"execute":"query-kvm"})"), R"({"return": {"enabled": false, "present": true}})");
    EXPECT_EQ(ask(R"({"execute":"query-cpus-fast"})"),
        R"({"return": [{"thread-id": 10918, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}]})");
    EXPECT_EQ(ask(R"({"execute":"query-chardev"})"),
        R"({"return": [{"frontend-open": true, "filename": "null", "label": "parallel0"}, {"frontend-open": true, "filename": "stdio", "label": "compat_monitor0"}, {"frontend-open": true, "filename": "null", "label": "serial0"}]})");
    Json block = Json::parse(ask(R"({"execute":"query-block"})"));
    ASSERT_EQ(block["return"].size(), 4u);
    EXPECT_EQ(block["return"][0]["inserted"]["image"]["virtual-size"], 64 << 20);
    EXPECT_EQ(block["return"][0]["inserted"]["node-name"], "#block152");
    EXPECT_EQ(block["return"][0]["io-status"], "ok");
    EXPECT_EQ(block["return"][1]["tray_open"], false);
    EXPECT_FALSE(block["return"][3].contains("qdev"));
    Json stats = Json::parse(ask(R"({"execute":"query-blockstats"})"));
    EXPECT_EQ(stats["return"][0]["stats"]["timed_stats"], Json::array());
    EXPECT_EQ(stats["return"][0]["qdev"], "/machine/unattached/device[23]");
    Json pci = Json::parse(ask(R"({"execute":"query-pci"})"));
    const Json& ide = pci["return"][0]["devices"][2];
    EXPECT_EQ(ide["class_info"], Json::parse(R"({"desc": "IDE controller", "class": 257})"));
    EXPECT_EQ(ide["regions"][0], Json::parse(R"({"bar": 4, "type": "io", "address": -1, "size": 16})"));
    EXPECT_EQ(pci["return"][0]["devices"][3]["irq_pin"], 1);
    Json commands = Json::parse(ask(R"({"execute":"query-commands"})"));
    bool has_hmc = false;
    for (const auto& c : commands["return"])
        has_hmc = has_hmc || c["name"] == "human-monitor-command";
    EXPECT_TRUE(has_hmc);
}

TEST_F(QmpSessionTest, RequestShapeErrorsUseQemuWording)
{
    negotiate();
    EXPECT_EQ(ask("[1,2]"), R"({"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}})");
    EXPECT_EQ(ask(R"("hello")"), R"({"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}})");
    EXPECT_EQ(ask(R"({"execute":1})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}})");
    EXPECT_EQ(
        ask(R"({"foo":1})"), R"({"error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}})");
    EXPECT_EQ(ask(R"({"execute":"query-status","arguments":[]})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}})");
    EXPECT_EQ(ask(R"({"execute":"query-status","id":5,"extra":1})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input member 'extra' is unexpected"}, "id": 5})");
    EXPECT_EQ(ask(R"({"id":7})"),
        R"({"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}, "id": 7})");
    EXPECT_EQ(ask(R"({"execute":"nope"})"),
        R"({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})");
    EXPECT_EQ(ask(R"({"execute":"x"})"),
        R"({"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}})");
}

TEST_F(QmpSessionTest, ArgumentErrorsUseQemuWording)
{
    negotiate();
    EXPECT_EQ(ask(R"({"execute":"query-status","arguments":{"x":1}})"),
        R"({"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}})");
    EXPECT_EQ(ask(R"({"execute":"block_resize","arguments":{"device":"foo"}})"),
        R"({"error": {"class": "GenericError", "desc": "Parameter 'size' is missing"}})");
    EXPECT_EQ(ask(R"({"execute":"block_resize","arguments":{"device":"foo","size":"x"}})"),
        R"({"error": {"class": "GenericError", "desc": "Invalid parameter type for 'size', expected: integer"}})");
    EXPECT_EQ(ask(R"({"execute":"block_resize","arguments":{"device":"foo","size":1}})"),
        R"({"error": {"class": "GenericError", "desc": "Cannot find device='foo' nor node-name=''"}})");
    EXPECT_EQ(ask(R"({"execute":"block_resize","arguments":{"device":"ide0-hd0","size":-5}})"),
        R"({"error": {"class": "GenericError", "desc": "Parameter 'size' expects a >0 size"}})");
    EXPECT_EQ(ask(R"({"execute":"eject","arguments":{"device":"foo"}})"),
        R"({"error": {"class": "DeviceNotFound", "desc": "Device 'foo' not found"}})");
    EXPECT_EQ(ask(R"({"execute":"eject","arguments":{"device":"ide0-hd0"}})"),
        R"({"error": {"class": "GenericError", "desc": "Device 'ide0-hd0' is not removable"}})");
    EXPECT_EQ(ask(R"({"execute":"blockdev-change-medium","arguments":{"device":"foo","filename":"/x"}})"),
        R"({"error": {"class": "DeviceNotFound", "desc": "Device 'foo' not found"}})");
    EXPECT_EQ(ask(R"({"execute":"pmemsave","arguments":{"val":0,"size":16,"filename":"/nonexist/qms.bin"}})"),
        R"({"error": {"class": "GenericError", "desc": "Could not open '/nonexist/qms.bin': No such file or directory"}})");
    EXPECT_EQ(ask(R"({"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"xx"}]}})"),
        R"({"error": {"class": "GenericError", "desc": "Parameter 'data' does not accept value 'xx'"}})");
}

TEST_F(QmpSessionTest, CommandsReachTheMachine)
{
    negotiate();
    EXPECT_EQ(
        ask(R"({"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"number","data":30}],"hold-time":50}})"),
        R"({"return": {}})");
    ASSERT_EQ(machine.sent_keys.size(), 1u);
    EXPECT_EQ(machine.sent_keys[0][1].number, 30);
    EXPECT_EQ(machine.hold_times[0], 50);
    EXPECT_EQ(
        ask(R"({"execute":"block_resize","arguments":{"node-name":"#block152","size":1048576}})"), R"({"return": {}})");
    EXPECT_EQ(machine.resized.back(), "#block152=1048576");
    EXPECT_EQ(
        ask(R"({"execute":"blockdev-change-medium","arguments":{"device":"ide1-cd0","filename":"/dev/null","format":"raw"}})"),
        R"({"return": {}})");
    EXPECT_EQ(ask(R"({"execute":"system_reset"})"), R"({"return": {}})");
    EXPECT_EQ(machine.reset_calls, 1);
    EXPECT_EQ(ask(R"({"execute":"quit"})"), R"({"return": {}})");
    EXPECT_EQ(machine.quit_calls, 1);
}

TEST_F(QmpSessionTest, HumanMonitorCommandReturnsHmpText)
{
    negotiate();
    EXPECT_EQ(ask(R"({"execute":"human-monitor-command","arguments":{"command-line":"info status"}})"),
        R"({"return": "VM status: paused (prelaunch)\r\n"})");
    EXPECT_EQ(ask(R"({"execute":"human-monitor-command","arguments":{"command-line":"foo"}})"),
        R"({"return": "unknown command: 'foo'\r\n"})");
    EXPECT_EQ(ask(R"({"execute":"human-monitor-command","arguments":{"command-line":"info kvm"}})"),
        R"({"return": "kvm support: disabled\r\n"})");
}

TEST_F(QmpSessionTest, MalformedJsonKeepsTheSessionUsable)
{
    negotiate();
    EXPECT_EQ(ask("{ bad json }"),
        R"({"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'bad'"}})");
    EXPECT_EQ(ask(R"({"execute": })"),
        R"({"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}})");
    EXPECT_EQ(
        ask(R"({"a":1,})"), R"({"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}})");
    EXPECT_EQ(ask("]"), R"({"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}})");
    // QEMU's single-quote extension.
    EXPECT_EQ(ask("{'execute':'query-name'}"), R"({"return": {"name": "testvm"}})");
    EXPECT_EQ(ask(R"({'execute':'human-monitor-command','arguments':{'command-line':'help \'x'}})"),
        R"({"return": "unknown command: ''x'\r\n"})");
    // Two requests on one line, and one split across feeds.
    out.clear();
    session.feed(R"({"execute":"query-name"} {"execute":"query-kvm"})");
    EXPECT_EQ(out.size(), 2u);
    out.clear();
    session.feed(R"({"execute":"query-)");
    EXPECT_TRUE(out.empty());
    session.feed("name\"}");
    EXPECT_EQ(out.size(), 1u);
}

TEST_F(QmpSessionTest, OversizedMessagesAreRefusedWithBoundedMemory)
{
    negotiate();
    out.clear();
    std::string huge = R"({"execute":"query-name","arguments":{"x":")" + std::string(10 << 20, 'A') + "\"}}";
    // Feed in chunks as a socket would deliver them.
    for (size_t i = 0; i < huge.size(); i += 65536)
        session.feed(std::string_view(huge).substr(i, 65536));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON token size limit exceeded\"}}\r\n");
    EXPECT_EQ(ask(R"({"execute":"query-name"})"), R"({"return": {"name": "testvm"}})");
}

TEST(JsonStreamTest, BufferStaysBelowTheLimitAndNestingIsCapped)
{
    std::vector<JsonStream::Item> items;
    JsonStream stream([&items](JsonStream::Item item) { items.push_back(std::move(item)); }, 4096);
    size_t peak = 0;
    stream.feed("[\"");
    for (int i = 0; i < 1000; ++i) {
        stream.feed(std::string(1000, 'x'));
        peak = std::max(peak, stream.buffered_bytes());
    }
    stream.feed("\"]");
    EXPECT_LE(peak, 4096u);
    ASSERT_EQ(items.size(), 1u);
    EXPECT_FALSE(items[0].ok);
    items.clear();
    stream.feed(std::string(1025, '['));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].text, "JSON nesting depth limit exceeded");
    stream.feed(std::string(1025, ']')); // each stray closer is its own error
    EXPECT_EQ(items.size(), 1u + 1025u);
    items.clear();
    stream.feed("{\"a\": \"}\"} ");
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].text, "{\"a\": \"}\"}");
}

TEST_F(QmpSessionTest, EventsFlowOnlyAfterNegotiation)
{
    MachineEvent stop { MonitorEvent::Stop, {} };
    std::string line = to_qmp_text(qmp_event(stop)) + "\r\n";
    out.clear();
    session.send_event(line);
    EXPECT_TRUE(out.empty());
    negotiate();
    out.clear();
    session.send_event(line);
    ASSERT_EQ(out.size(), 1u);
    Json event = Json::parse(out[0]);
    EXPECT_EQ(event["event"], "STOP");
    EXPECT_TRUE(event["timestamp"]["seconds"].is_number_integer());
    EXPECT_TRUE(event["timestamp"]["microseconds"].is_number_integer());
    MachineEvent reset { MonitorEvent::Reset,
        { { "guest", EventField::Type::Bool, "", 0, false },
            { "reason", EventField::Type::String, "host-qmp-system-reset" } } };
    EXPECT_EQ(qmp_event(reset)["data"], Json::parse(R"({"guest": false, "reason": "host-qmp-system-reset"})"));
}

} // namespace
} // namespace kiln::monitor
