#include "monitor/hmp_args.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "util/size.h"

namespace kiln::monitor {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void skip_spaces(std::string_view& text)
{
    while (!text.empty() && is_space(text.front()))
        text.remove_prefix(1);
}

char peek(std::string_view text) { return text.empty() ? '\0' : text.front(); }

// Recursive-descent evaluator over QEMU's grammar: sum > logic > prod > unary
// (QEMU binds & | ^ looser than * / %, and so do we).
class ExpressionParser {
public:
    ExpressionParser(std::string_view text, MachineControl* machine, const HmpState& state)
        : m_text(text)
        , m_machine(machine)
        , m_state(state)
    {
    }

    Result<int64_t> parse()
    {
        uint64_t value = sum();
        if (m_error)
            return Error::invalid(*m_error);
        skip_spaces(m_text);
        return int64_t(value);
    }
    std::string_view rest() const { return m_text; }

private:
    void fail(std::string message)
    {
        if (!m_error)
            m_error = std::move(message);
        m_text = {}; // stop consuming: every level sees the end
    }
    void next()
    {
        if (!m_text.empty()) {
            m_text.remove_prefix(1);
            skip_spaces(m_text);
        }
    }

    uint64_t unary()
    {
        if (m_error)
            return 0;
        char c = peek(m_text);
        switch (c) {
        case '+':
            next();
            return unary();
        case '-':
            next();
            return -unary();
        case '~':
            next();
            return ~unary();
        case '(': {
            next();
            uint64_t value = sum();
            if (peek(m_text) != ')') {
                fail("')' expected");
                return 0;
            }
            next();
            return value;
        }
        case '\'': {
            m_text.remove_prefix(1);
            if (m_text.empty()) {
                fail("character constant expected");
                return 0;
            }
            uint64_t value = uint8_t(m_text.front());
            m_text.remove_prefix(1);
            if (peek(m_text) != '\'') {
                fail("missing terminating ' character");
                return 0;
            }
            next();
            return value;
        }
        case '$': {
            m_text.remove_prefix(1);
            std::string name;
            while (!m_text.empty()
                && (std::isalnum(uint8_t(m_text.front())) || m_text.front() == '_' || m_text.front() == '.')) {
                if (name.size() < 127)
                    name += m_text.front();
                m_text.remove_prefix(1);
            }
            skip_spaces(m_text);
            auto value = register_value(name);
            if (!value) {
                fail("unknown register");
                return 0;
            }
            return *value;
        }
        case '\0':
            fail("unexpected end of expression");
            return 0;
        default: {
            std::string digits(m_text.substr(0, 64));
            errno = 0;
            char* end = nullptr;
            uint64_t value = std::strtoull(digits.c_str(), &end, 0);
            size_t used = size_t(end - digits.c_str());
            // strtoull accepts a leading sign or spaces; QEMU's caller has
            // handled both, so only digits may start a number here.
            if (used == 0 || !std::isdigit(uint8_t(c))) {
                fail(std::string("invalid char '") + c + "' in expression");
                return 0;
            }
            if (errno == ERANGE) {
                fail("number too large");
                return 0;
            }
            m_text.remove_prefix(used);
            skip_spaces(m_text);
            return value;
        }
        }
    }

    uint64_t prod()
    {
        uint64_t value = unary();
        for (;;) {
            char op = peek(m_text);
            if (m_error || (op != '*' && op != '/' && op != '%'))
                return value;
            next();
            uint64_t rhs = unary();
            if (m_error)
                return 0;
            if (op == '*') {
                value *= rhs;
                continue;
            }
            if (rhs == 0) {
                fail("division by zero");
                return 0;
            }
            int64_t a = int64_t(value), b = int64_t(rhs);
            if (b == -1) // INT64_MIN / -1 would trap
                value = op == '/' ? uint64_t(0) - value : 0;
            else
                value = uint64_t(op == '/' ? a / b : a % b);
        }
    }

    uint64_t logic()
    {
        uint64_t value = prod();
        for (;;) {
            char op = peek(m_text);
            if (m_error || (op != '&' && op != '|' && op != '^'))
                return value;
            next();
            uint64_t rhs = prod();
            value = op == '&' ? value & rhs : op == '|' ? value | rhs : value ^ rhs;
        }
    }

    uint64_t sum()
    {
        uint64_t value = logic();
        for (;;) {
            char op = peek(m_text);
            if (m_error || (op != '+' && op != '-'))
                return value;
            next();
            uint64_t rhs = logic();
            value = op == '+' ? value + rhs : value - rhs;
        }
    }

    std::optional<uint64_t> register_value(const std::string& raw_name)
    {
        if (!m_machine)
            return std::nullopt;
        auto regs = m_machine->cpu_registers(m_state.current_cpu);
        if (!regs)
            return std::nullopt;
        std::string name;
        for (char c : raw_name)
            name += char(std::tolower(uint8_t(c)));
        const CpuRegisters& r = regs.value();
        static const char* const k_gpr64[] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9",
            "r10", "r11", "r12", "r13", "r14", "r15" };
        static const char* const k_gpr32[] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi" };
        for (int i = 0; i < 16; ++i)
            if (name == k_gpr64[i])
                return r.gpr[i];
        for (int i = 0; i < 8; ++i)
            if (name == k_gpr32[i])
                return uint32_t(r.gpr[i]);
        if (name == "pc" || name == "rip")
            return r.segs[1].base + r.rip;
        if (name == "eip")
            return uint32_t(r.rip);
        if (name == "eflags" || name == "rflags")
            return r.rflags;
        if (name == "sp")
            return r.gpr[4];
        static const char* const k_segs[] = { "es", "cs", "ss", "ds", "fs", "gs" };
        for (int i = 0; i < 6; ++i)
            if (name == k_segs[i])
                return r.segs[i].selector;
        if (name == "cr0")
            return r.cr0;
        if (name == "cr2")
            return r.cr2;
        if (name == "cr3")
            return r.cr3;
        if (name == "cr4")
            return r.cr4;
        return std::nullopt;
    }

    std::string_view m_text;
    MachineControl* m_machine;
    const HmpState& m_state;
    std::optional<std::string> m_error;
};

struct ArgDecl {
    std::string name;
    std::string type; // "s", "B", "F", "S", "i", "l", "M", "o", "b", "/", "-f"
    bool optional = false;
};

std::vector<ArgDecl> split_args_type(std::string_view args_type)
{
    std::vector<ArgDecl> decls;
    while (!args_type.empty()) {
        auto comma = args_type.find(',');
        std::string_view item = args_type.substr(0, comma);
        auto colon = item.find(':');
        ArgDecl decl;
        decl.name = std::string(item.substr(0, colon));
        std::string_view type = colon == std::string_view::npos ? "" : item.substr(colon + 1);
        if (!type.empty() && type.back() == '?') {
            decl.optional = true;
            type.remove_suffix(1);
        }
        decl.type = std::string(type);
        decls.push_back(std::move(decl));
        if (comma == std::string_view::npos)
            break;
        args_type.remove_prefix(comma + 1);
    }
    return decls;
}

// QEMU's get_str: a quoted string with \n \r \\ \' \" escapes, or a run of
// non-space characters. nullopt when nothing is there; `problem` gets
// QEMU's extra line for a bad quoted string.
std::optional<std::string> get_str(std::string_view& text, std::string& problem)
{
    skip_spaces(text);
    if (text.empty())
        return std::nullopt;
    std::string out;
    if (text.front() == '"') {
        text.remove_prefix(1);
        while (!text.empty() && text.front() != '"') {
            char c = text.front();
            text.remove_prefix(1);
            if (c == '\\') {
                if (text.empty())
                    break;
                c = text.front();
                text.remove_prefix(1);
                switch (c) {
                case 'n':
                    c = '\n';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case '\\':
                case '\'':
                case '"':
                    break;
                default:
                    problem = std::string("unsupported escape code: '\\") + c + "'";
                    return std::nullopt;
                }
            }
            out += c;
        }
        if (text.empty()) {
            problem = "unterminated string";
            return std::nullopt;
        }
        text.remove_prefix(1);
        return out;
    }
    while (!text.empty() && !is_space(text.front())) {
        out += text.front();
        text.remove_prefix(1);
    }
    return out;
}

Result<void> parse_format(std::string_view& text, HmpState& state, Json& out)
{
    skip_spaces(text);
    int64_t count = 1;
    int format = -1;
    int size = -1;
    if (peek(text) == '/') {
        text.remove_prefix(1);
        if (std::isdigit(uint8_t(peek(text)))) {
            count = 0;
            while (std::isdigit(uint8_t(peek(text)))) {
                count = std::min<int64_t>(count * 10 + (text.front() - '0'), INT32_MAX);
                text.remove_prefix(1);
            }
        }
        for (;;) {
            char c = peek(text);
            if (c == 'o' || c == 'd' || c == 'u' || c == 'x' || c == 'i' || c == 'c') {
                format = c;
            } else if (c == 'b') {
                size = 1;
            } else if (c == 'h') {
                size = 2;
            } else if (c == 'w') {
                size = 4;
            } else if (c == 'g' || c == 'L') {
                size = 8;
            } else {
                break;
            }
            text.remove_prefix(1);
        }
        if (!text.empty() && !is_space(text.front()))
            return Error::invalid(std::string("invalid char in format: '") + text.front() + "'");
        if (format < 0)
            format = state.last_format;
        if (format != 'i') {
            if (size < 0)
                size = state.last_size;
            state.last_size = size;
        }
        state.last_format = char(format);
    } else {
        format = state.last_format;
        size = format == 'i' ? -1 : state.last_size;
    }
    out["count"] = count;
    out["format"] = std::string(1, char(format));
    out["size"] = size;
    return {};
}

bool later_flag_has(const std::vector<ArgDecl>& decls, size_t from, char letter)
{
    for (size_t i = from; i < decls.size(); ++i)
        if (decls[i].type.size() == 2 && decls[i].type[0] == '-' && decls[i].type[1] == letter)
            return true;
    return false;
}

} // namespace

Result<int64_t> parse_hmp_expression(std::string_view& text, MachineControl* machine, const HmpState& state)
{
    ExpressionParser parser(text, machine, state);
    auto value = parser.parse();
    if (value)
        text = parser.rest();
    return value;
}

Result<Json> parse_hmp_args(const Command& command, std::string_view display_name, std::string_view args,
    HmpState& state, MachineControl* machine)
{
    Json out = Json::object();
    auto decls = split_args_type(command.hmp_args_type);
    std::string name(display_name);
    for (size_t i = 0; i < decls.size(); ++i) {
        const auto& decl = decls[i];
        const std::string& type = decl.type;
        if (type == "s" || type == "B" || type == "F") {
            skip_spaces(args);
            if (decl.optional && args.empty())
                continue;
            std::string problem;
            auto value = get_str(args, problem);
            if (!value) {
                const char* what = type == "F" ? "filename" : type == "B" ? "block device name" : "string";
                return Error::invalid((problem.empty() ? "" : problem + "\n") + name + ": " + what + " expected");
            }
            out[decl.name] = *value;
        } else if (type == "S") {
            skip_spaces(args);
            if (args.empty()) {
                if (decl.optional)
                    continue;
                return Error::invalid(name + ": string expected");
            }
            out[decl.name] = std::string(args);
            args = {};
        } else if (type == "i" || type == "l" || type == "M") {
            skip_spaces(args);
            if (decl.optional && args.empty())
                continue;
            auto value = TRY(parse_hmp_expression(args, machine, state));
            if (type == "i" && ((uint64_t(value) >> 32) & 0xffffffffu))
                return Error::invalid("'" + name + "' has failed: integer is for 32-bit values");
            if (type == "M") {
                if (value < 0)
                    return Error::invalid("enter a positive value");
                value = int64_t(uint64_t(value) << 20);
            }
            out[decl.name] = value;
        } else if (type == "o") {
            skip_spaces(args);
            if (decl.optional && args.empty())
                continue;
            size_t end = 0;
            while (end < args.size() && !is_space(args[end]))
                ++end;
            auto size = parse_size(args.substr(0, end), uint64_t(1) << 20);
            if (!size || *size > uint64_t(INT64_MAX))
                return Error::invalid("invalid size");
            out[decl.name] = int64_t(*size);
            args.remove_prefix(end);
        } else if (type == "b") {
            skip_spaces(args);
            if (decl.optional && args.empty())
                continue;
            std::string problem;
            auto value = get_str(args, problem);
            if (!value || (*value != "on" && *value != "off"))
                return Error::invalid("Expected 'on' or 'off'");
            out[decl.name] = *value == "on";
        } else if (type == "/") {
            TRY(parse_format(args, state, out));
        } else if (type.size() == 2 && type[0] == '-') {
            std::string_view saved = args;
            skip_spaces(args);
            if (peek(args) != '-') {
                args = saved;
                continue;
            }
            char letter = args.size() > 1 ? args[1] : '\0';
            if (letter != type[1]) {
                if (!later_flag_has(decls, i + 1, letter))
                    return Error::invalid(name + ": unsupported option -" + std::string(1, letter));
                args = saved;
                continue;
            }
            args.remove_prefix(2);
            out[decl.name] = true;
        } else {
            return Error::internal(name + ": bad args_type '" + type + "'");
        }
    }
    skip_spaces(args);
    if (!args.empty())
        return Error::invalid(name + ": extraneous characters at the end of line");
    return out;
}

} // namespace kiln::monitor
