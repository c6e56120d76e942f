#include "monitor/qmp_session.h"

#include <sys/time.h>

namespace kiln::monitor {

Json qmp_error(QmpErrorClass error_class, const std::string& desc)
{
    Json out;
    out["error"] = Json { { "class", qmp_error_class_name(error_class) }, { "desc", desc } };
    return out;
}

Json qmp_greeting(const VersionInfo& v)
{
    Json version;
    version["qemu"] = Json { { "micro", v.micro }, { "minor", v.minor }, { "major", v.major } };
    version["package"] = v.package;
    Json qmp;
    qmp["version"] = version;
    qmp["capabilities"] = Json::array({ "oob" });
    return Json { { "QMP", qmp } };
}

const char* event_name(MonitorEvent kind)
{
    switch (kind) {
    case MonitorEvent::Stop:
        return "STOP";
    case MonitorEvent::Resume:
        return "RESUME";
    case MonitorEvent::Shutdown:
        return "SHUTDOWN";
    case MonitorEvent::Reset:
        return "RESET";
    case MonitorEvent::Powerdown:
        return "POWERDOWN";
    case MonitorEvent::BlockIoError:
        return "BLOCK_IO_ERROR";
    }
    return "UNKNOWN";
}

Json qmp_event(const MachineEvent& event)
{
    timeval now {};
    gettimeofday(&now, nullptr);
    Json out;
    out["timestamp"] = Json { { "seconds", int64_t(now.tv_sec) }, { "microseconds", int64_t(now.tv_usec) } };
    out["event"] = event_name(event.kind);
    if (!event.data.empty()) {
        Json data = Json::object();
        for (const auto& field : event.data) {
            switch (field.type) {
            case EventField::Type::String:
                data[field.key] = field.string_value;
                break;
            case EventField::Type::Int:
                data[field.key] = field.int_value;
                break;
            case EventField::Type::Bool:
                data[field.key] = field.bool_value;
                break;
            }
        }
        out["data"] = std::move(data);
    }
    return out;
}

QmpSession::QmpSession(const CommandTable& table, MachineControl& machine, Send send, size_t max_message_bytes)
    : m_table(table)
    , m_machine(machine)
    , m_send(std::move(send))
    , m_stream([this](JsonStream::Item item) { handle_item(std::move(item)); }, max_message_bytes)
    , m_hmp(table, machine)
{
}

void QmpSession::start() { send_json(qmp_greeting(m_machine.version())); }

void QmpSession::feed(std::string_view bytes) { m_stream.feed(bytes); }

void QmpSession::send_event(const std::string& line)
{
    if (m_negotiated)
        m_send(line);
}

void QmpSession::send_json(const Json& value) { m_send(to_qmp_text(value) + "\r\n"); }

namespace {

// The first bare word in text outside strings, for QEMU's "invalid keyword".
std::string first_bad_keyword(const std::string& text)
{
    bool in_string = false, escape = false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (escape)
                escape = false;
            else if (c == '\\')
                escape = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t end = i;
            while (end < text.size() && (std::isalnum(uint8_t(text[end])) || text[end] == '_'))
                ++end;
            std::string word = text.substr(i, end - i);
            if (word != "true" && word != "false" && word != "null")
                return word;
            i = end - 1;
        }
    }
    return "";
}

} // namespace

void QmpSession::handle_item(JsonStream::Item item)
{
    if (!item.ok) {
        send_json(qmp_error(QmpErrorClass::GenericError, item.text));
        return;
    }
    Json request = Json::parse(item.text, nullptr, false);
    if (request.is_discarded()) {
        std::string word = first_bad_keyword(item.text);
        send_json(qmp_error(QmpErrorClass::GenericError,
            word.empty() ? "JSON parse error, expecting value" : "JSON parse error, invalid keyword '" + word + "'"));
        return;
    }
    send_json(handle_request(request));
}

Json QmpSession::handle_request(const Json& request)
{
    if (!request.is_object())
        return qmp_error(QmpErrorClass::GenericError, "QMP input must be a JSON object");
    std::optional<Json> id;
    if (request.contains("id"))
        id = request["id"];
    auto reply = [&id](Json body) {
        if (id)
            body["id"] = *id;
        return body;
    };
    const Json* execute = nullptr;
    const Json* exec_oob = nullptr;
    const Json* arguments = nullptr;
    for (auto it = request.begin(); it != request.end(); ++it) {
        const std::string& key = it.key();
        if (key == "execute" || (key == "exec-oob" && m_oob_enabled)) {
            if (!it->is_string())
                return reply(qmp_error(QmpErrorClass::GenericError, "QMP input member '" + key + "' must be a string"));
            (key == "execute" ? execute : exec_oob) = &*it;
        } else if (key == "arguments") {
            if (!it->is_object())
                return reply(qmp_error(QmpErrorClass::GenericError, "QMP input member 'arguments' must be an object"));
            arguments = &*it;
        } else if (key != "id") {
            return reply(qmp_error(QmpErrorClass::GenericError, "QMP input member '" + key + "' is unexpected"));
        }
    }
    if (execute && exec_oob)
        return reply(qmp_error(QmpErrorClass::GenericError, "QMP input member 'execute' clashes with 'exec-oob'"));
    if (exec_oob) {
        // No Kiln command is marked allow-oob: every one runs in order.
        std::string oob_name = exec_oob->get<std::string>();
        if (!m_table.find_qmp(oob_name))
            return reply(qmp_error(QmpErrorClass::CommandNotFound, "The command " + oob_name + " has not been found"));
        return reply(qmp_error(QmpErrorClass::GenericError, "The command " + oob_name + " does not support OOB"));
    }
    if (!execute)
        return reply(qmp_error(QmpErrorClass::GenericError, "QMP input lacks member 'execute'"));
    std::string name = execute->get<std::string>();
    Json args = arguments ? *arguments : Json::object();

    if (name == "qmp_capabilities") {
        if (m_negotiated)
            return reply(qmp_error(
                QmpErrorClass::CommandNotFound, "Capabilities negotiation is already complete, command ignored"));
        const Command* caps = m_table.find_qmp(name);
        if (auto error = CommandTable::check_qmp_args(*caps, args))
            return reply(qmp_error(error->error_class, error->desc));
        if (args.contains("enable")) {
            for (const auto& cap : args["enable"]) {
                if (!cap.is_string() || cap != "oob")
                    return reply(qmp_error(QmpErrorClass::GenericError,
                        "Parameter 'enable' does not accept value '"
                            + (cap.is_string() ? cap.get<std::string>() : cap.dump()) + "'"));
            }
        }
        m_negotiated = true;
        m_oob_enabled = args.contains("enable") && !args["enable"].empty();
        return reply(Json { { "return", Json::object() } });
    }
    if (!m_negotiated)
        return reply(
            qmp_error(QmpErrorClass::CommandNotFound, "Expecting capabilities negotiation with 'qmp_capabilities'"));
    const Command* command = m_table.find_qmp(name);
    if (!command)
        return reply(qmp_error(QmpErrorClass::CommandNotFound, "The command " + name + " has not been found"));
    if (auto error = CommandTable::check_qmp_args(*command, args))
        return reply(qmp_error(error->error_class, error->desc));
    CommandContext ctx { m_machine, m_table, nullptr, {} };
    ctx.run_hmp_line = [this](const std::string& line, int64_t cpu_index) {
        m_hmp.state().current_cpu = cpu_index;
        return m_hmp.execute(line);
    };
    CommandResult result = command->run(ctx, args);
    if (!result.ok())
        return reply(qmp_error(result.error().error_class, result.error().desc));
    return reply(Json { { "return", result.value() } });
}

} // namespace kiln::monitor
