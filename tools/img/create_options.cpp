#include "tools/img/create_options.h"

#include <algorithm>
#include <cstdio>

#include "util/size.h"

namespace kiln::tools {

static const std::vector<CreateOptionDesc>& qcow2_options()
{
    static const std::vector<CreateOptionDesc> list = {
        {"encryption", "bool", "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)",
         nullptr},
        {"encrypt.format", "str", "Encrypt the image, format choices: 'aes', 'luks'", nullptr},
        {"encrypt.key-secret", "str", "ID of secret providing qcow AES key or LUKS passphrase", nullptr},
        {"encrypt.cipher-alg", "str", "Name of encryption cipher algorithm", nullptr},
        {"encrypt.cipher-mode", "str", "Name of encryption cipher mode", nullptr},
        {"encrypt.ivgen-alg", "str", "Name of IV generator algorithm", nullptr},
        {"encrypt.ivgen-hash-alg", "str", "Name of IV generator hash algorithm", nullptr},
        {"encrypt.hash-alg", "str", "Name of encryption hash algorithm", nullptr},
        {"encrypt.iter-time", "num", "Time to spend in PBKDF in milliseconds", nullptr},
        {"cluster_size", "size", "qcow2 cluster size", "65536"},
        {"extended_l2", "bool", "Extended L2 tables", "off"},
        {"preallocation", "str", "Preallocation mode (allowed values: off, metadata, falloc, full)", nullptr},
        {"compression_type", "str", "Compression method used for image cluster compression", "zlib"},
        {"size", "size", "Virtual disk size", nullptr},
        {"compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])", nullptr},
        {"backing_file", "str", "File name of a base image", nullptr},
        {"backing_fmt", "str", "Image format of the base image", nullptr},
        {"data_file", "str", "File name of an external data file", nullptr},
        {"data_file_raw", "bool", "The external data file must stay valid as a raw image", nullptr},
        {"lazy_refcounts", "bool", "Postpone refcount updates", "off"},
        {"refcount_bits", "num", "Width of a reference count entry in bits", "16"},
    };
    return list;
}

static const std::vector<CreateOptionDesc>& raw_options()
{
    static const std::vector<CreateOptionDesc> list = {
        {"size", "size", "Virtual disk size", nullptr},
    };
    return list;
}

std::vector<CreateOptionDesc> protocol_create_options()
{
    return {
        {"size", "size", "Virtual disk size", nullptr},
        {"nocow", "bool", "Turn off copy-on-write (valid only on btrfs)", nullptr},
        {"preallocation", "str", "Preallocation mode (allowed values: off, falloc, full)", nullptr},
        {"extent_size_hint", "size", "Extent size hint for the image file, 0 to disable", nullptr},
    };
}

std::vector<CreateOptionDesc> format_create_options(const block::FormatDriver& driver)
{
    if (driver.name == "qcow2")
        return qcow2_options();
    if (driver.name == "raw")
        return raw_options();
    // Unknown to this table: use the driver's list (strings live as long
    // as the static list the driver returns a copy of).
    static std::vector<std::vector<block::CreateOptionInfo>> keep;
    keep.push_back(driver.create_options ? driver.create_options() : std::vector<block::CreateOptionInfo>{});
    std::vector<CreateOptionDesc> out;
    for (auto& o : keep.back())
        out.push_back({o.name.c_str(), o.type.c_str(), o.help.c_str(),
                       o.default_value.empty() ? nullptr : o.default_value.c_str()});
    if (std::none_of(out.begin(), out.end(), [](auto& d) { return std::string(d.name) == "size"; }))
        out.insert(out.begin(), {"size", "size", "Virtual disk size", nullptr});
    return out;
}

// Format options first, then protocol options not already named (QEMU
// appends the protocol list to the format's).
static std::vector<CreateOptionDesc> merged(const block::FormatDriver& driver)
{
    auto list = format_create_options(driver);
    for (auto& p : protocol_create_options()) {
        bool dup = std::any_of(list.begin(), list.end(), [&](auto& d) { return std::string(d.name) == p.name; });
        if (!dup)
            list.push_back(p);
    }
    return list;
}

static std::string type_label(const std::string& type)
{
    if (type == "bool")
        return "<bool (on/off)>";
    return "<" + type + ">";
}

std::string create_options_help(const block::FormatDriver& driver, bool with_protocol)
{
    std::vector<CreateOptionDesc> list;
    if (driver.name == "raw" && with_protocol)
        list = protocol_create_options();
    else
        list = with_protocol ? merged(driver) : format_create_options(driver);
    std::sort(list.begin(), list.end(), [](auto& a, auto& b) { return std::string(a.name) < std::string(b.name); });
    std::string out = with_protocol ? "Supported options:\n" : "Supported " + std::string(driver.name) + " options:\n";
    for (auto& d : list) {
        char line[512];
        std::string left = std::string(d.name) + "=" + type_label(d.type);
        std::snprintf(line, sizeof line, "  %-22s - %s\n", left.c_str(), d.help);
        out += line;
    }
    if (!with_protocol)
        out += "\nThe protocol level may support further options.\nSpecify the target filename to include those "
               "options.\n";
    return out;
}

Result<void> validate_create_options(const block::FormatDriver& driver, const OptionList& options)
{
    auto list = merged(driver);
    for (auto& [key, value] : options.entries()) {
        bool known = std::any_of(list.begin(), list.end(), [&](auto& d) { return key == d.name; });
        if (!known)
            return Error::invalid("Invalid parameter '" + key + "'");
        for (auto& d : list) {
            if (key != d.name)
                continue;
            std::string type = d.type;
            if (type == "size" && !parse_size(value))
                return Error::invalid("Parameter '" + key + "' expects a non-negative number below 2^64\n"
                                      "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                                      "and exabytes, respectively.");
            if (type == "bool" && !parse_bool_option(key, value))
                return Error::invalid("Parameter '" + key + "' expects 'on' or 'off'");
        }
    }
    return ok();
}

std::string formatting_line_options(const block::FormatDriver& driver, const OptionList& options,
                                    uint64_t size_bytes)
{
    std::vector<CreateOptionDesc> list =
        driver.name == "raw" ? protocol_create_options() : merged(driver);
    std::string out = "fmt=" + std::string(driver.name);
    for (auto& d : list) {
        std::string name = d.name;
        std::optional<std::string> value;
        if (name == "size")
            value = std::to_string(size_bytes);
        else
            value = options.get(name);
        std::string type = d.type;
        if (value && name != "size" && (type == "size" || type == "num")) {
            auto n = parse_size(*value);
            if (n)
                value = std::to_string(*n);
        }
        if (!value && d.default_value)
            value = d.default_value;
        if (!value)
            continue;
        out += " " + name + "=" + *value;
    }
    return out;
}

} // namespace kiln::tools
