#include "system/cli_parse.h"

#include "system/cli_table.h"

namespace kiln::system {

std::vector<std::string> ParsedArgs::all(const std::string& name) const
{
    std::vector<std::string> out;
    for (auto& o : options)
        if (o.name == name)
            out.push_back(o.value);
    return out;
}

const std::string* ParsedArgs::last(const std::string& name) const
{
    for (auto it = options.rbegin(); it != options.rend(); ++it)
        if (it->name == name)
            return &it->value;
    return nullptr;
}

Result<ParsedArgs> parse_args(const std::vector<std::string>& argv)
{
    ParsedArgs out;
    for (size_t i = 0; i < argv.size(); i++) {
        const std::string& arg = argv[i];
        if (arg.size() < 2 || arg[0] != '-') {
            // QEMU takes a bare argument as the first hard disk image.
            out.options.push_back({"hda", arg});
            continue;
        }
        // QEMU accepts both -opt and --opt.
        std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
        const OptionInfo* info = find_option(name);
        if (!info)
            return Error::invalid("-" + name + ": invalid option");
        if (info->status == OptionStatus::Unsupported)
            return Error::not_supported("-" + name + ": unsupported option");
        std::string canonical(info->name);
        if (canonical == "M")
            canonical = "machine";
        if (canonical == "h")
            canonical = "help";
        ParsedOption opt{canonical, {}};
        if (info->arg == OptionArg::Required) {
            if (i + 1 >= argv.size())
                return Error::invalid("-" + name + ": requires an argument");
            opt.value = argv[++i];
        }
        out.options.push_back(std::move(opt));
    }
    return out;
}

} // namespace kiln::system
