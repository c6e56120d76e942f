// Machine inspection: info registers, mtree, qtree, chardev, pci.
#include "monitor/command_table.h"
#include "monitor/hmp_args.h"
#include "monitor/text_dump.h"

namespace kiln::monitor {

namespace {

CommandResult registers(CommandContext& ctx, const Json& args)
{
    auto cpus = ctx.machine.cpus();
    std::string out;
    bool all = args.value("cpustate_all", false);
    int64_t wanted = args.contains("vcpu") ? args["vcpu"].get<int64_t>() : ctx.hmp ? ctx.hmp->current_cpu : 0;
    bool found = false;
    for (const auto& cpu : cpus) {
        if (!all && cpu.index != wanted)
            continue;
        auto regs = ctx.machine.cpu_registers(cpu.index);
        if (!regs)
            continue;
        found = true;
        out += strprintf("\nCPU#%lld\n", (long long)cpu.index);
        out += format_cpu_registers(regs.value());
    }
    if (!found && !all)
        return CommandError::generic(strprintf("CPU#%lld not available", (long long)wanted));
    return Json(out);
}

Json pci_device_json(const PciDeviceInfo& d)
{
    Json dev;
    dev["bus"] = d.bus;
    dev["slot"] = d.slot;
    dev["function"] = d.function;
    Json class_info;
    if (const char* desc = pci_class_description(d.class_code))
        class_info["desc"] = desc;
    class_info["class"] = d.class_code;
    dev["class_info"] = class_info;
    dev["id"] = Json { { "device", d.device_id }, { "vendor", d.vendor_id }, { "subsystem", d.subsystem_id },
        { "subsystem-vendor", d.subsystem_vendor_id } };
    if (d.irq_pin != 0)
        dev["irq"] = d.irq;
    dev["irq_pin"] = d.irq_pin;
    dev["qdev_id"] = d.qdev_id;
    Json regions = Json::array();
    for (const auto& r : d.regions) {
        Json region;
        region["bar"] = r.bar;
        region["type"] = r.kind == PciRegion::Kind::Io ? "io" : "memory";
        region["address"] = int64_t(r.address);
        region["size"] = int64_t(r.size_bytes);
        if (r.kind == PciRegion::Kind::Memory) {
            region["prefetch"] = r.prefetch;
            region["mem_type_64"] = r.mem_type_64;
        }
        regions.push_back(std::move(region));
    }
    dev["regions"] = std::move(regions);
    return dev;
}

void print_pci(std::string& out, const Json& result, const Json&)
{
    for (const auto& bus : result) {
        for (const auto& d : bus["devices"]) {
            out += strprintf("  Bus %2lld, device %3lld, function %lld:\n", (long long)d["bus"].get<int64_t>(),
                (long long)d["slot"].get<int64_t>(), (long long)d["function"].get<int64_t>());
            out += "    ";
            const Json& ci = d["class_info"];
            if (ci.contains("desc"))
                out += ci["desc"].get<std::string>();
            else
                out += strprintf("Class %04lld", (long long)ci["class"].get<int64_t>());
            const Json& id = d["id"];
            out += strprintf(": PCI device %04llx:%04llx\n", (long long)id["vendor"].get<int64_t>(),
                (long long)id["device"].get<int64_t>());
            out += strprintf("      PCI subsystem %04llx:%04llx\n", (long long)id["subsystem-vendor"].get<int64_t>(),
                (long long)id["subsystem"].get<int64_t>());
            if (d.contains("irq"))
                out += strprintf("      IRQ %lld, pin %c\n", (long long)d["irq"].get<int64_t>(),
                    char('A' + d["irq_pin"].get<int64_t>() - 1));
            for (const auto& r : d["regions"]) {
                uint64_t addr = uint64_t(r["address"].get<int64_t>());
                uint64_t size = uint64_t(r["size"].get<int64_t>());
                out += strprintf("      BAR%lld: ", (long long)r["bar"].get<int64_t>());
                if (r["type"] == "io")
                    out += strprintf("I/O at 0x%04llx [0x%04llx].\n", (unsigned long long)addr,
                        (unsigned long long)(addr + size - 1));
                else
                    out += strprintf("%d bit%s memory at 0x%08llx [0x%08llx].\n",
                        r["mem_type_64"].get<bool>() ? 64 : 32, r["prefetch"].get<bool>() ? " prefetchable" : "",
                        (unsigned long long)addr, (unsigned long long)(addr + size - 1));
            }
            out += "      id \"" + d["qdev_id"].get<std::string>() + "\"\n";
        }
    }
}

} // namespace

void register_info_commands(CommandTable& table)
{
    Command regs = info_command("registers", "",
        "show the cpu registers (-a: show register info for all cpus; vcpu: "
        "specific vCPU to query; show the current CPU's registers if no argument "
        "is specified)");
    regs.hmp_args_type = "cpustate_all:-a,vcpu:i?";
    regs.hmp_params = "[-a|vcpu]";
    regs.hmp_error_bare = true;
    regs.run = registers;
    table.add(std::move(regs));

    Command mtree = info_command("mtree", "",
        "show memory tree (-f: dump flat view for address spaces;-d: dump dispatch "
        "tree, valid with -f only);-o: dump region owners/parents;-D: dump disabled "
        "regions");
    mtree.hmp_args_type = "flatview:-f,dispatch_tree:-d,owner:-o,disabled:-D";
    mtree.hmp_params = "[-f][-d][-o][-D]";
    mtree.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        return Json(format_memory_tree(ctx.machine.memory_tree()));
    };
    table.add(std::move(mtree));

    Command qtree = info_command("qtree", "", "show device tree");
    qtree.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        return Json(format_device_tree(ctx.machine.device_tree()));
    };
    table.add(std::move(qtree));

    Command chardev = info_command("chardev", "query-chardev", "show the character devices");
    chardev.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& c : ctx.machine.chardevs())
            out.push_back(
                Json { { "frontend-open", c.frontend_open }, { "filename", c.filename }, { "label", c.label } });
        return out;
    };
    chardev.hmp_print = [](std::string& out, const Json& r, const Json&) {
        for (const auto& c : r)
            out += c["label"].get<std::string>() + ": filename=" + c["filename"].get<std::string>() + "\n";
    };
    table.add(std::move(chardev));

    Command pci = info_command("pci", "query-pci", "show PCI info");
    pci.run = [](CommandContext& ctx, const Json&) -> CommandResult {
        Json out = Json::array();
        for (const auto& d : ctx.machine.pci_devices()) {
            Json* bus = nullptr;
            for (auto& b : out)
                if (b["bus"].get<int64_t>() == d.bus)
                    bus = &b;
            if (!bus) {
                out.push_back(Json { { "bus", d.bus }, { "devices", Json::array() } });
                bus = &out.back();
            }
            (*bus)["devices"].push_back(pci_device_json(d));
        }
        return out;
    };
    pci.hmp_print = print_pci;
    table.add(std::move(pci));
}

} // namespace kiln::monitor
