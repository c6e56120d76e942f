// QmpSession: one QMP client's protocol state: greeting, capabilities
// negotiation, request validation and dispatch with QEMU's error classes
// and wording, replies carrying the request id, and events (only after
// negotiation, as QEMU). Transport-free: bytes in via feed(), each reply or
// event out via send() as one line ending in "\r\n".
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "monitor/command_table.h"
#include "monitor/hmp_executor.h"
#include "monitor/json_stream.h"

namespace kiln::monitor {

class QmpSession {
public:
    using Send = std::function<void(std::string_view)>;

    QmpSession(const CommandTable& table, MachineControl& machine, Send send,
        size_t max_message_bytes = JsonStream::k_default_max_value_bytes);

    void start(); // sends the greeting
    void feed(std::string_view bytes);
    // A formatted event line from the monitor; dropped before negotiation.
    void send_event(const std::string& line);

    bool negotiated() const { return m_negotiated; }

    // Builds the reply for one decoded request (exposed for tests).
    Json handle_request(const Json& request);

private:
    void handle_item(JsonStream::Item item);
    void send_json(const Json& value);

    const CommandTable& m_table;
    MachineControl& m_machine;
    Send m_send;
    JsonStream m_stream;
    HmpExecutor m_hmp; // state for human-monitor-command
    bool m_negotiated = false;
    bool m_oob_enabled = false;
};

Json qmp_error(QmpErrorClass error_class, const std::string& desc);
// {"QMP": {"version": {...}, "capabilities": ["oob"]}}
Json qmp_greeting(const VersionInfo& version);
// {"timestamp": {...}, "event": "STOP", "data": {...}} from a machine event,
// stamped with the host's wall clock.
Json qmp_event(const MachineEvent& event);
const char* event_name(MonitorEvent kind);

} // namespace kiln::monitor
