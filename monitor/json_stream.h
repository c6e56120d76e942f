// JsonStream: splits a QMP byte stream into top-level JSON values the way
// QEMU's json-streamer does (by brace/bracket balance, not by newline),
// with QEMU's single-quoted string extension and bounded memory: a value
// larger than the size limit is skipped to its end and reported once.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace kiln::monitor {

class JsonStream {
public:
    // Either a complete value's text (with single quotes rewritten to
    // JSON) or an error description for QMP's GenericError.
    struct Item {
        bool ok = true;
        std::string text;
    };

    static constexpr size_t k_default_max_value_bytes = 1 << 20;
    static constexpr int k_max_nesting = 1024;

    explicit JsonStream(std::function<void(Item)> on_item, size_t max_value_bytes = k_default_max_value_bytes)
        : m_on_item(std::move(on_item))
        , m_max_value_bytes(max_value_bytes)
    {
    }

    void feed(std::string_view bytes);

    // Bytes currently held for an incomplete value (bounded by the limit).
    size_t buffered_bytes() const { return m_value.size(); }

private:
    void finish_value();
    void finish_scalar();
    void append(char c);

    std::function<void(Item)> m_on_item;
    size_t m_max_value_bytes;
    std::string m_value;
    int m_depth = 0;
    char m_quote = 0; // '"' or '\'' while inside a string
    bool m_escape = false;
    bool m_in_scalar = false; // a bare top-level token: number, keyword
    bool m_discarding = false;
    const char* m_discard_reason = nullptr;
};

} // namespace kiln::monitor
