#include "monitor/json_stream.h"

namespace kiln::monitor {

void JsonStream::append(char c)
{
    if (m_discarding)
        return;
    if (m_value.size() >= m_max_value_bytes) {
        m_discarding = true;
        m_discard_reason = "JSON token size limit exceeded";
        m_value.clear();
        m_value.shrink_to_fit();
        return;
    }
    m_value += c;
}

void JsonStream::finish_value()
{
    if (m_discarding) {
        m_on_item({ false, m_discard_reason });
    } else {
        m_on_item({ true, std::move(m_value) });
    }
    m_value.clear();
    m_discarding = false;
    m_discard_reason = nullptr;
    m_depth = 0;
}

void JsonStream::finish_scalar()
{
    m_in_scalar = false;
    finish_value();
}

void JsonStream::feed(std::string_view bytes)
{
    for (char c : bytes) {
        if (m_quote) {
            if (m_escape) {
                m_escape = false;
                // \' is only meaningful in single-quoted strings and is
                // not valid JSON: write the bare quote.
                if (c == '\'') {
                    if (!m_discarding && !m_value.empty())
                        m_value.pop_back();
                    append('\'');
                } else {
                    append(c);
                }
                continue;
            }
            if (c == '\\') {
                m_escape = true;
                append(c);
                continue;
            }
            if (c == m_quote) {
                m_quote = 0;
                append('"');
                if (m_depth == 0)
                    finish_value();
                continue;
            }
            if (c == '"') { // a double quote inside a single-quoted string
                append('\\');
                append('"');
                continue;
            }
            append(c);
            continue;
        }
        if (m_in_scalar) {
            bool ends = c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '{' || c == '}' || c == '[' || c == ']'
                || c == ',' || c == ':' || c == '"' || c == '\'';
            if (!ends) {
                append(c);
                continue;
            }
            finish_scalar();
            // fall through: the terminator starts the next item
        }
        switch (c) {
        case '"':
        case '\'':
            m_quote = c;
            append('"');
            break;
        case '{':
        case '[':
            ++m_depth;
            append(c);
            if (m_depth > k_max_nesting) {
                // As QEMU: report and start over at once, so the closing
                // brackets that follow cannot keep the stream waiting.
                m_discarding = true;
                m_discard_reason = "JSON nesting depth limit exceeded";
                finish_value();
            }
            break;
        case '}':
        case ']':
            if (m_depth == 0) {
                m_on_item({ false, "JSON parse error, expecting value" });
                break;
            }
            append(c);
            if (--m_depth == 0)
                finish_value();
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            if (m_depth > 0)
                append(c);
            break;
        default:
            append(c);
            if (m_depth == 0)
                m_in_scalar = true;
            break;
        }
    }
}

} // namespace kiln::monitor
