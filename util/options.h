// QEMU-style option strings: "key=val,key2=val2" with ",," for a literal
// comma, an optional implied first key ("qcow2,size=1G" with implied key
// "driver"), and dotted keys for nesting ("file.driver=file").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace kiln {

class OptionList {
public:
    using Entry = std::pair<std::string, std::string>;

    // implied_key: name given to a first element that has no '='. Without
    // one, a bare "flag" means "flag=on" as QemuOpts allows.
    static Result<OptionList> parse(std::string_view text, std::string_view implied_key = {});

    const std::vector<Entry>& entries() const { return m_entries; }
    bool empty() const { return m_entries.empty(); }

    // Last value given for key (QEMU lets later ones win).
    std::optional<std::string> get(std::string_view key) const;
    bool has(std::string_view key) const { return get(key).has_value(); }
    void set(std::string key, std::string value);
    void remove(std::string_view key);

    // Entries under "prefix." with the prefix stripped.
    OptionList subtree(std::string_view prefix) const;

    // Typed getters with QEMU's error text naming the key.
    Result<std::optional<bool>> get_bool(std::string_view key) const;
    Result<std::optional<uint64_t>> get_size(std::string_view key) const;
    Result<std::optional<uint64_t>> get_number(std::string_view key) const;

    // Marks keys as consumed; unconsumed() lists what no one understood.
    void consume(std::string_view key) const;
    std::vector<std::string> unconsumed() const;

    // Back to "k=v,..." with commas escaped.
    std::string to_string() const;

private:
    std::vector<Entry> m_entries;
    mutable std::vector<std::string> m_consumed;
};

// Parses "on|off|yes|no|true|false" like QEMU (error names the key).
Result<bool> parse_bool_option(std::string_view key, std::string_view value);

} // namespace kiln
