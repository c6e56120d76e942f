#include "monitor/text_dump.h"

#include <cstdarg>
#include <cstdio>

namespace kiln::monitor {

std::string strprintf(const char* format, ...)
{
    va_list args;
    va_start(args, format);
    va_list copy;
    va_copy(copy, args);
    int length = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    std::string out(size_t(length > 0 ? length : 0), '\0');
    if (length > 0)
        std::vsnprintf(out.data(), out.size() + 1, format, args);
    va_end(args);
    return out;
}

namespace {

// Descriptor flag bits as the SDM lays out the second descriptor dword.
constexpr uint32_t k_desc_type_shift = 8;
constexpr uint32_t k_desc_a = 1u << 8;
constexpr uint32_t k_desc_rw = 1u << 9; // R for code, W for data
constexpr uint32_t k_desc_ce = 1u << 10; // C for code, E for data
constexpr uint32_t k_desc_cs = 1u << 11;
constexpr uint32_t k_desc_s = 1u << 12;
constexpr uint32_t k_desc_dpl_shift = 13;
constexpr uint32_t k_desc_p = 1u << 15;
constexpr uint32_t k_desc_l = 1u << 21;
constexpr uint32_t k_desc_b = 1u << 22;

constexpr uint64_t k_efer_lma = 1u << 10;

void dump_segment(std::string& out, const char* name, const SegmentState& sc, bool cs64, bool pe, bool lma)
{
    if (cs64)
        out += strprintf("%-3s=%04x %016llx %08x %08x", name, sc.selector, (unsigned long long)sc.base, sc.limit,
            sc.flags & 0x00ffff00);
    else
        out += strprintf(
            "%-3s=%04x %08x %08x %08x", name, sc.selector, uint32_t(sc.base), sc.limit, sc.flags & 0x00ffff00);
    if (pe && (sc.flags & k_desc_p)) {
        out += strprintf(" DPL=%u ", (sc.flags >> k_desc_dpl_shift) & 3);
        if (sc.flags & k_desc_s) {
            if (sc.flags & k_desc_cs) {
                out += (sc.flags & k_desc_l) ? "CS64" : (sc.flags & k_desc_b) ? "CS32" : "CS16";
                out += strprintf(" [%c%c", (sc.flags & k_desc_ce) ? 'C' : '-', (sc.flags & k_desc_rw) ? 'R' : '-');
            } else {
                out += ((sc.flags & k_desc_b) || lma) ? "DS  " : "DS16";
                out += strprintf(" [%c%c", (sc.flags & k_desc_ce) ? 'E' : '-', (sc.flags & k_desc_rw) ? 'W' : '-');
            }
            out += strprintf("%c]", (sc.flags & k_desc_a) ? 'A' : '-');
        } else {
            static const char* const k_sys_names[2][16] = {
                { "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate", "IntGate16", "TrapGate16",
                    "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32", "Reserved", "IntGate32",
                    "TrapGate32" },
                { "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved", "Reserved", "Reserved",
                    "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64", "Reserved", "IntGate64", "TrapGate64" },
            };
            out += k_sys_names[lma ? 1 : 0][(sc.flags >> k_desc_type_shift) & 15];
        }
    }
    out += "\n";
}

} // namespace

std::string format_cpu_registers(const CpuRegisters& r)
{
    bool lma = r.efer & k_efer_lma;
    bool cs64 = lma && (r.segs[1].flags & k_desc_l);
    bool pe = r.cr0 & 1;
    uint64_t fl = r.rflags;
    auto flag = [fl](int bit, char c) { return (fl >> bit) & 1 ? c : '-'; };
    std::string flags = strprintf("[%c%c%c%c%c%c%c]", flag(10, 'D'), flag(11, 'O'), flag(7, 'S'), flag(6, 'Z'),
        flag(4, 'A'), flag(2, 'P'), flag(0, 'C'));
    std::string tail = strprintf(" CPL=%d II=%d A20=%d SMM=%d HLT=%d\n", r.cpl, r.interrupt_inhibit ? 1 : 0,
        r.a20_enabled ? 1 : 0, r.smm ? 1 : 0, r.halted ? 1 : 0);
    std::string out;
    auto q = [](uint64_t v) { return (unsigned long long)v; };
    // SDM order in gpr[]: RAX RCX RDX RBX RSP RBP RSI RDI; QEMU prints
    // A B C D, SI DI BP SP.
    const auto& g = r.gpr;
    if (cs64) {
        out += strprintf("RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n", q(g[0]), q(g[3]), q(g[1]), q(g[2]));
        out += strprintf("RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n", q(g[6]), q(g[7]), q(g[5]), q(g[4]));
        out += strprintf("R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n", q(g[8]), q(g[9]), q(g[10]), q(g[11]));
        out += strprintf("R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n", q(g[12]), q(g[13]), q(g[14]), q(g[15]));
        out += strprintf("RIP=%016llx RFL=%08x ", q(r.rip), uint32_t(fl)) + flags + tail;
    } else {
        out += strprintf(
            "EAX=%08x EBX=%08x ECX=%08x EDX=%08x\n", uint32_t(g[0]), uint32_t(g[3]), uint32_t(g[1]), uint32_t(g[2]));
        out += strprintf(
            "ESI=%08x EDI=%08x EBP=%08x ESP=%08x\n", uint32_t(g[6]), uint32_t(g[7]), uint32_t(g[5]), uint32_t(g[4]));
        out += strprintf("EIP=%08x EFL=%08x ", uint32_t(r.rip), uint32_t(fl)) + flags + tail;
    }
    static const char* const k_seg_names[6] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    for (int i = 0; i < 6; ++i)
        dump_segment(out, k_seg_names[i], r.segs[i], cs64, pe, lma);
    dump_segment(out, "LDT", r.ldt, cs64, pe, lma);
    dump_segment(out, "TR", r.tr, cs64, pe, lma);
    if (lma) {
        out += strprintf("GDT=     %016llx %08x\n", q(r.gdt.base), r.gdt.limit);
        out += strprintf("IDT=     %016llx %08x\n", q(r.idt.base), r.idt.limit);
        out += strprintf(
            "CR0=%08x CR2=%016llx CR3=%016llx CR4=%08x\n", uint32_t(r.cr0), q(r.cr2), q(r.cr3), uint32_t(r.cr4));
    } else {
        out += strprintf("GDT=     %08x %08x\n", uint32_t(r.gdt.base), r.gdt.limit);
        out += strprintf("IDT=     %08x %08x\n", uint32_t(r.idt.base), r.idt.limit);
        out += strprintf("CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", uint32_t(r.cr0), uint32_t(r.cr2), uint32_t(r.cr3),
            uint32_t(r.cr4));
    }
    for (int i = 0; i < 4; ++i)
        out += strprintf("DR%d=%016llx ", i, q(r.dr[i]));
    out += strprintf("\nDR6=%016llx DR7=%016llx\n", q(r.dr[6]), q(r.dr[7]));
    out += strprintf("EFER=%016llx\n", q(r.efer));
    unsigned top = (r.fsw >> 11) & 7;
    out += strprintf("FCW=%04x FSW=%04x [ST=%u] FTW=%02x MXCSR=%08x\n", r.fcw, r.fsw, top, r.ftw_abridged, r.mxcsr);
    for (int i = 0; i < 8; ++i)
        out += strprintf("FPR%d=%016llx %04x%s", i, q(r.fpr[i].mantissa), r.fpr[i].exponent, (i & 1) ? "\n" : " ");
    int xmm_count = cs64 ? 16 : 8;
    for (int i = 0; i < xmm_count; ++i)
        out += strprintf("XMM%02d=%016llx %016llx%s", i, q(r.xmm[i].hi), q(r.xmm[i].lo), (i & 1) ? "\n" : " ");
    return out;
}

namespace {

void dump_region(std::string& out, const MemoryRegionInfo& mr, int level)
{
    out += strprintf("%*s%016llx-%016llx (prio %d, %s%s): ", level * 2, "", (unsigned long long)mr.start,
        (unsigned long long)mr.end, mr.priority, mr.kind.c_str(), mr.enabled ? "" : ", disabled");
    if (!mr.alias_of.empty())
        out += strprintf("alias %s @%s %016llx-%016llx\n", mr.name.c_str(), mr.alias_of.c_str(),
            (unsigned long long)mr.alias_start, (unsigned long long)mr.alias_end);
    else
        out += mr.name + "\n";
    for (const auto& child : mr.children)
        dump_region(out, child, level + 1);
}

void dump_bus(std::string& out, const QtreeBus& bus, int indent);

void dump_device(std::string& out, const QtreeDevice& dev, int indent)
{
    out += strprintf("%*sdev: %s, id \"%s\"\n", indent, "", dev.type.c_str(), dev.id.c_str());
    for (const auto& line : dev.lines)
        out += strprintf("%*s%s\n", indent + 2, "", line.c_str());
    for (const auto& bus : dev.buses)
        dump_bus(out, bus, indent + 2);
}

void dump_bus(std::string& out, const QtreeBus& bus, int indent)
{
    out += strprintf("%*sbus: %s\n", indent, "", bus.name.c_str());
    out += strprintf("%*stype %s\n", indent + 2, "", bus.type.c_str());
    for (const auto& dev : bus.devices)
        dump_device(out, dev, indent + 2);
}

} // namespace

std::string format_memory_tree(const std::vector<MemoryTreeSection>& sections)
{
    std::string out;
    for (const auto& section : sections) {
        const char* header = section.kind == MemoryTreeSection::Kind::AddressSpace ? "address-space" : "memory-region";
        for (const auto& name : section.names)
            out += strprintf("%s: %s\n", header, name.c_str());
        if (section.root) {
            dump_region(out, *section.root, 1);
            out += "\n";
        }
    }
    return out;
}

std::string format_device_tree(const QtreeBus& root)
{
    std::string out;
    dump_bus(out, root, 0);
    return out;
}

const char* pci_class_description(uint16_t class_code)
{
    struct Entry {
        uint16_t code;
        const char* desc;
    };
    // QEMU's pci_class_descriptions table, the entries it names.
    static const Entry k_classes[] = {
        { 0x0001, "VGA controller" },
        { 0x0100, "SCSI controller" },
        { 0x0101, "IDE controller" },
        { 0x0102, "Floppy controller" },
        { 0x0103, "IPI controller" },
        { 0x0104, "RAID controller" },
        { 0x0106, "SATA controller" },
        { 0x0107, "SAS controller" },
        { 0x0180, "Storage controller" },
        { 0x0200, "Ethernet controller" },
        { 0x0201, "Token Ring controller" },
        { 0x0202, "FDDI controller" },
        { 0x0203, "ATM controller" },
        { 0x0280, "Network controller" },
        { 0x0300, "VGA controller" },
        { 0x0301, "XGA controller" },
        { 0x0302, "3D controller" },
        { 0x0380, "Display controller" },
        { 0x0400, "Video controller" },
        { 0x0401, "Audio controller" },
        { 0x0402, "Phone" },
        { 0x0403, "Audio controller" },
        { 0x0480, "Multimedia controller" },
        { 0x0500, "RAM controller" },
        { 0x0501, "Flash controller" },
        { 0x0580, "Memory controller" },
        { 0x0600, "Host bridge" },
        { 0x0601, "ISA bridge" },
        { 0x0602, "EISA bridge" },
        { 0x0603, "MC bridge" },
        { 0x0604, "PCI bridge" },
        { 0x0605, "PCMCIA bridge" },
        { 0x0606, "NUBUS bridge" },
        { 0x0607, "CARDBUS bridge" },
        { 0x0608, "RACEWAY bridge" },
        { 0x0680, "Bridge" },
        { 0x0700, "Serial port" },
        { 0x0701, "Parallel port" },
        { 0x0800, "Interrupt controller" },
        { 0x0801, "DMA controller" },
        { 0x0802, "Timer" },
        { 0x0803, "RTC" },
        { 0x0900, "Keyboard" },
        { 0x0901, "Pen" },
        { 0x0902, "Mouse" },
        { 0x0A00, "Dock station" },
        { 0x0B00, "i386 cpu" },
        { 0x0c00, "Firewire controller" },
        { 0x0c01, "Access bus controller" },
        { 0x0c02, "SSA controller" },
        { 0x0c03, "USB controller" },
        { 0x0c04, "Fibre channel controller" },
        { 0x0c05, "SMBus" },
    };
    for (const auto& entry : k_classes)
        if (entry.code == class_code)
            return entry.desc;
    return nullptr;
}

} // namespace kiln::monitor
