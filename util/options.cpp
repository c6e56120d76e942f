#include "util/options.h"

#include <algorithm>
#include <cstdlib>

#include "util/size.h"

namespace kiln {

Result<OptionList> OptionList::parse(std::string_view text, std::string_view implied_key)
{
    OptionList list;
    size_t i = 0;
    bool first = true;
    while (i <= text.size()) {
        // Read one element up to an unescaped comma; ",," is a literal comma.
        std::string element;
        bool saw_equals = false;
        std::string key;
        while (i < text.size()) {
            char c = text[i];
            if (c == ',') {
                if (i + 1 < text.size() && text[i + 1] == ',') {
                    element += ',';
                    i += 2;
                    continue;
                }
                break;
            }
            if (c == '=' && !saw_equals) {
                saw_equals = true;
                key = element;
                element.clear();
                ++i;
                continue;
            }
            element += c;
            ++i;
        }
        ++i; // skip the separator
        if (!saw_equals) {
            if (element.empty()) {
                if (i > text.size() && !first)
                    break;
                if (text.empty())
                    break;
                return Error::invalid("Invalid parameter '' in '" + std::string(text) + "'");
            }
            if (first && !implied_key.empty())
                list.m_entries.emplace_back(std::string(implied_key), element);
            else
                list.m_entries.emplace_back(element, "on");
        } else {
            if (key.empty())
                return Error::invalid("Invalid parameter '' in '" + std::string(text) + "'");
            list.m_entries.emplace_back(key, element);
        }
        first = false;
    }
    return list;
}

std::optional<std::string> OptionList::get(std::string_view key) const
{
    for (auto it = m_entries.rbegin(); it != m_entries.rend(); ++it) {
        if (it->first == key) {
            consume(key);
            return it->second;
        }
    }
    return std::nullopt;
}

void OptionList::set(std::string key, std::string value)
{
    remove(key);
    m_entries.emplace_back(std::move(key), std::move(value));
}

void OptionList::remove(std::string_view key)
{
    std::erase_if(m_entries, [&](const Entry& e) { return e.first == key; });
}

OptionList OptionList::subtree(std::string_view prefix) const
{
    OptionList sub;
    std::string p = std::string(prefix) + ".";
    for (auto& [k, v] : m_entries) {
        if (k.compare(0, p.size(), p) == 0) {
            consume(k);
            sub.m_entries.emplace_back(k.substr(p.size()), v);
        }
    }
    return sub;
}

Result<bool> parse_bool_option(std::string_view key, std::string_view value)
{
    if (value == "on" || value == "yes" || value == "true" || value == "y")
        return true;
    if (value == "off" || value == "no" || value == "false" || value == "n")
        return false;
    return Error::invalid("Parameter '" + std::string(key) + "' expects 'on' or 'off'");
}

Result<std::optional<bool>> OptionList::get_bool(std::string_view key) const
{
    auto v = get(key);
    if (!v)
        return std::optional<bool>();
    return std::optional<bool>(TRY(parse_bool_option(key, *v)));
}

Result<std::optional<uint64_t>> OptionList::get_size(std::string_view key) const
{
    auto v = get(key);
    if (!v)
        return std::optional<uint64_t>();
    auto size = parse_size(*v);
    if (!size)
        return Error::invalid("Parameter '" + std::string(key)
                              + "' expects a non-negative number below 2^64\n"
                                "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                                "and exabytes, respectively.");
    return std::optional<uint64_t>(*size);
}

Result<std::optional<uint64_t>> OptionList::get_number(std::string_view key) const
{
    auto v = get(key);
    if (!v)
        return std::optional<uint64_t>();
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v->c_str(), &end, 0);
    if (v->empty() || *end || errno || (*v)[0] == '-')
        return Error::invalid("Parameter '" + std::string(key) + "' expects a number");
    return std::optional<uint64_t>(n);
}

void OptionList::consume(std::string_view key) const
{
    if (std::find(m_consumed.begin(), m_consumed.end(), key) == m_consumed.end())
        m_consumed.emplace_back(key);
}

std::vector<std::string> OptionList::unconsumed() const
{
    std::vector<std::string> out;
    for (auto& [k, v] : m_entries)
        if (std::find(m_consumed.begin(), m_consumed.end(), k) == m_consumed.end()
            && std::find(out.begin(), out.end(), k) == out.end())
            out.push_back(k);
    return out;
}

std::string OptionList::to_string() const
{
    std::string out;
    for (auto& [k, v] : m_entries) {
        if (!out.empty())
            out += ',';
        out += k;
        out += '=';
        for (char c : v) {
            out += c;
            if (c == ',')
                out += ',';
        }
    }
    return out;
}

} // namespace kiln
