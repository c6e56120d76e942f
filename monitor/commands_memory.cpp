// Guest memory: x, xp, memsave, pmemsave.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "monitor/command_table.h"
#include "monitor/hmp_args.h"
#include "monitor/memory_dump.h"
#include "monitor/text_dump.h"

namespace kiln::monitor {

namespace {

Command dump_command(const char* name, AddressKind kind, const char* help)
{
    Command c;
    c.hmp_name = name;
    c.hmp_args_type = "fmt:/,addr:l";
    c.hmp_params = "/fmt addr";
    c.help = help;
    c.run = [kind](CommandContext& ctx, const Json& args) -> CommandResult {
        DumpRequest request;
        request.kind = kind;
        request.cpu_index = ctx.hmp ? ctx.hmp->current_cpu : 0;
        request.address = uint64_t(args["addr"].get<int64_t>());
        request.count = args["count"].get<int64_t>();
        request.format = args["format"].get<std::string>()[0];
        request.size = int(args["size"].get<int64_t>());
        return Json(format_memory_dump(ctx.machine, request));
    };
    return c;
}

CommandResult save_memory(CommandContext& ctx, const Json& args, AddressKind kind)
{
    uint64_t addr = uint64_t(args["val"].get<int64_t>());
    int64_t size = args["size"].get<int64_t>();
    std::string filename = args["filename"].get<std::string>();
    int64_t cpu = args.value("cpu-index", ctx.hmp ? ctx.hmp->current_cpu : int64_t(0));
    if (kind == AddressKind::Virtual) {
        bool found = false;
        for (const auto& c : ctx.machine.cpus())
            found = found || c.index == cpu;
        if (!found)
            return CommandError::generic("Parameter 'cpu-index' expects a CPU number");
    }
    int fd = ::open(filename.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return CommandError::generic("Could not open '" + filename + "': " + std::strerror(errno));
    std::vector<uint8_t> buf(1024);
    uint64_t offset = 0;
    uint64_t total = size < 0 ? 0 : uint64_t(size);
    CommandResult result = Json::object();
    while (offset < total) {
        uint64_t l = std::min<uint64_t>(buf.size(), total - offset);
        if (!ctx.machine.read_memory(kind, cpu, addr + offset, buf.data(), l)) {
            result = CommandError::generic(
                strprintf("Invalid addr 0x%016llx/size %lld specified", (unsigned long long)addr, (long long)size));
            break;
        }
        if (::write(fd, buf.data(), l) != ssize_t(l)) {
            result = CommandError::generic(std::string("writing memory to '") + filename + "' failed");
            break;
        }
        offset += l;
    }
    ::close(fd);
    return result;
}

Command save_command(const char* name, AddressKind kind, const char* help)
{
    Command c;
    c.hmp_name = name;
    c.hmp_args_type = "val:l,size:i,filename:s";
    c.hmp_params = "addr size file";
    c.help = help;
    c.qmp_name = name;
    c.qmp_args = { { "val", ArgType::Int }, { "size", ArgType::Int }, { "filename", ArgType::String } };
    if (kind == AddressKind::Virtual)
        c.qmp_args.push_back({ "cpu-index", ArgType::Int, true });
    c.run = [kind](CommandContext& ctx, const Json& args) { return save_memory(ctx, args, kind); };
    return c;
}

} // namespace

void register_memory_commands(CommandTable& table)
{
    table.add(dump_command("x", AddressKind::Virtual, "virtual memory dump starting at 'addr'"));
    table.add(dump_command("xp", AddressKind::Physical, "physical memory dump starting at 'addr'"));
    table.add(save_command(
        "memsave", AddressKind::Virtual, "save to disk virtual memory dump starting at 'addr' of size 'size'"));
    table.add(save_command(
        "pmemsave", AddressKind::Physical, "save to disk physical memory dump starting at 'addr' of size 'size'"));
}

} // namespace kiln::monitor
