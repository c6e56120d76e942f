// sendkey / send-key, help, human-monitor-command, query-commands,
// qmp_capabilities.
#include <algorithm>
#include <cstdlib>

#include "monitor/command_table.h"

namespace kiln::monitor {

namespace {

// QAPI's QKeyCode names.
const char* const k_qcodes[] = {
    "unmapped",
    "shift",
    "shift_r",
    "alt",
    "alt_r",
    "ctrl",
    "ctrl_r",
    "menu",
    "esc",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "0",
    "minus",
    "equal",
    "backspace",
    "tab",
    "q",
    "w",
    "e",
    "r",
    "t",
    "y",
    "u",
    "i",
    "o",
    "p",
    "bracket_left",
    "bracket_right",
    "ret",
    "a",
    "s",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "semicolon",
    "apostrophe",
    "grave_accent",
    "backslash",
    "z",
    "x",
    "c",
    "v",
    "b",
    "n",
    "m",
    "comma",
    "dot",
    "slash",
    "asterisk",
    "spc",
    "caps_lock",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "f6",
    "f7",
    "f8",
    "f9",
    "f10",
    "num_lock",
    "scroll_lock",
    "kp_divide",
    "kp_multiply",
    "kp_subtract",
    "kp_add",
    "kp_enter",
    "kp_decimal",
    "sysrq",
    "kp_0",
    "kp_1",
    "kp_2",
    "kp_3",
    "kp_4",
    "kp_5",
    "kp_6",
    "kp_7",
    "kp_8",
    "kp_9",
    "less",
    "f11",
    "f12",
    "print",
    "home",
    "pgup",
    "pgdn",
    "end",
    "left",
    "up",
    "down",
    "right",
    "insert",
    "delete",
    "stop",
    "again",
    "props",
    "undo",
    "front",
    "copy",
    "open",
    "paste",
    "find",
    "cut",
    "lf",
    "help",
    "meta_l",
    "meta_r",
    "compose",
    "pause",
    "ro",
    "hiragana",
    "henkan",
    "yen",
    "muhenkan",
    "katakanahiragana",
    "kp_comma",
    "kp_equals",
    "power",
    "sleep",
    "wake",
    "audionext",
    "audioprev",
    "audiostop",
    "audioplay",
    "audiomute",
    "volumeup",
    "volumedown",
    "mediaselect",
    "mail",
    "calculator",
    "computer",
    "ac_home",
    "ac_back",
    "ac_forward",
    "ac_refresh",
    "ac_bookmarks",
    "lang1",
    "lang2",
};

bool is_qcode(std::string_view name)
{
    for (const char* q : k_qcodes)
        if (name == q)
            return true;
    return false;
}

CommandResult send_key(CommandContext& ctx, const Json& args)
{
    std::vector<KeyPress> keys;
    for (const auto& key : args["keys"]) {
        if (!key.is_object() || !key.contains("type") || !key.contains("data"))
            return CommandError::generic("Parameter 'keys' expects KeyValue");
        std::string type = key["type"].is_string() ? key["type"].get<std::string>() : "";
        if (type == "qcode") {
            if (!key["data"].is_string() || !is_qcode(key["data"].get<std::string>()))
                return CommandError::generic("Parameter 'data' does not accept value '"
                    + (key["data"].is_string() ? key["data"].get<std::string>() : key["data"].dump()) + "'");
            keys.push_back({ key["data"].get<std::string>(), 0 });
        } else if (type == "number") {
            if (!key["data"].is_number_integer())
                return CommandError::generic("Invalid parameter type for 'data', expected: integer");
            keys.push_back({ "", key["data"].get<int64_t>() });
        } else {
            return CommandError::generic("Parameter 'type' does not accept value '" + type + "'");
        }
    }
    if (keys.empty())
        return CommandError::generic("Parameter 'keys' is missing");
    auto result = ctx.machine.send_keys(keys, args.value("hold-time", int64_t(100)));
    if (!result)
        return result.error();
    return Json::object();
}

// "ctrl-alt-f1" -> [{"type": "qcode", "data": "ctrl"}, ...], as hmp_sendkey.
CommandResult sendkey_args(CommandContext&, const Json& hmp)
{
    std::string keys = hmp["keys"].get<std::string>();
    Json list = Json::array();
    size_t start = 0;
    for (;;) {
        size_t dash = keys.find('-', start);
        std::string name = keys.substr(start, dash == std::string::npos ? std::string::npos : dash - start);
        if (name == "<")
            name = "less";
        if (name.rfind("0x", 0) == 0) {
            char* end = nullptr;
            long long number = std::strtoll(name.c_str(), &end, 0);
            if (*end != '\0')
                return CommandError::generic("invalid parameter: " + name);
            list.push_back(Json { { "type", "number" }, { "data", number } });
        } else if (is_qcode(name)) {
            list.push_back(Json { { "type", "qcode" }, { "data", name } });
        } else {
            return CommandError::generic("invalid parameter: " + name);
        }
        if (dash == std::string::npos)
            break;
        start = dash + 1;
    }
    Json args;
    args["keys"] = list;
    if (hmp.contains("hold-time"))
        args["hold-time"] = hmp["hold-time"];
    return args;
}

std::string help_line(const Command& c)
{
    return std::string(c.info_subcommand ? "info " : "") + c.hmp_name + " " + c.hmp_params + " -- " + c.help + "\n";
}

std::vector<const Command*> sorted(const CommandTable& table, bool info)
{
    std::vector<const Command*> list;
    for (const auto& c : table.commands())
        if (!c.hmp_name.empty() && c.info_subcommand == info)
            list.push_back(&c);
    std::sort(list.begin(), list.end(), [](const Command* a, const Command* b) { return a->hmp_name < b->hmp_name; });
    return list;
}

} // namespace

std::vector<std::string> split_words(std::string_view text)
{
    std::vector<std::string> words;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && text[i] == ' ')
            ++i;
        size_t start = i;
        while (i < text.size() && text[i] != ' ')
            ++i;
        if (i > start)
            words.emplace_back(text.substr(start, i - start));
    }
    return words;
}

std::string format_help(const CommandTable& table, std::string_view args)
{
    std::vector<std::string> words = split_words(args);
    std::string out;
    if (words.empty()) {
        std::vector<std::pair<std::string, std::string>> lines;
        for (const Command* c : sorted(table, false))
            lines.emplace_back(c->hmp_name, help_line(*c));
        lines.emplace_back("info", "info [subcommand] -- show various information about the system state\n");
        std::sort(lines.begin(), lines.end());
        for (const auto& line : lines)
            out += line.second;
        return out;
    }
    if (words[0] == "info") {
        if (words.size() == 1) {
            for (const Command* c : sorted(table, true))
                out += help_line(*c);
            return out;
        }
        const Command* c = table.find_info(words[1]);
        if (!c || words.size() > 2)
            return "unknown command: 'info " + words[1] + "'\n";
        return help_line(*c);
    }
    const Command* c = table.find_hmp(words[0]);
    if (!c)
        return "unknown command: '" + words[0] + "'\n";
    return help_line(*c);
}

void register_misc_commands(CommandTable& table)
{
    Command sendkey;
    sendkey.hmp_name = "sendkey";
    sendkey.hmp_args_type = "keys:s,hold-time:i?";
    sendkey.hmp_params = "keys [hold_ms]";
    sendkey.help = "send keys to the VM (e.g. 'sendkey ctrl-alt-f1', default hold time=100 ms)";
    sendkey.qmp_name = "send-key";
    sendkey.qmp_args = { { "keys", ArgType::Array }, { "hold-time", ArgType::Int, true } };
    sendkey.hmp_to_args = sendkey_args;
    sendkey.hmp_error_bare = true;
    sendkey.run = send_key;
    table.add(std::move(sendkey));

    Command help;
    help.hmp_name = "help|?";
    help.hmp_args_type = "name:S?";
    help.hmp_params = "[cmd]";
    help.help = "show the help";
    help.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        return Json(format_help(ctx.table, args.value("name", "")));
    };
    table.add(std::move(help));

    Command hmc;
    hmc.qmp_name = "human-monitor-command";
    hmc.qmp_args = { { "command-line", ArgType::String }, { "cpu-index", ArgType::Int, true } };
    hmc.run = [](CommandContext& ctx, const Json& args) -> CommandResult {
        if (!ctx.run_hmp_line)
            return CommandError::generic("human-monitor-command is not available here");
        int64_t cpu_index = 0;
        if (args.contains("cpu-index")) {
            cpu_index = args["cpu-index"].get<int64_t>();
            bool found = false;
            for (const auto& cpu : ctx.machine.cpus())
                found = found || cpu.index == cpu_index;
            if (!found)
                return CommandError::generic("Parameter 'cpu-index' expects a CPU number");
        } else if (!ctx.machine.cpus().empty()) {
            cpu_index = ctx.machine.cpus().front().index;
        }
        std::string text = ctx.run_hmp_line(args["command-line"].get<std::string>(), cpu_index);
        // HMP output goes through a terminal discipline: \n becomes \r\n.
        std::string crlf;
        for (char c : text) {
            if (c == '\n')
                crlf += '\r';
            crlf += c;
        }
        return Json(crlf);
    };
    table.add(std::move(hmc));

    Command commands;
    commands.qmp_name = "query-commands";
    commands.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& c : ctx.table.commands())
            if (!c.qmp_name.empty())
                out.push_back(Json { { "name", c.qmp_name } });
        return out;
    };
    table.add(std::move(commands));

    // Negotiation itself lives in the QMP session; this entry lists it.
    Command caps;
    caps.qmp_name = "qmp_capabilities";
    caps.qmp_args = { { "enable", ArgType::Array, true } };
    caps.run = [](CommandContext&, const Json&) -> CommandResult { return Json::object(); };
    table.add(std::move(caps));
}

} // namespace kiln::monitor
