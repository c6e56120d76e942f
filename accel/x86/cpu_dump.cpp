#include "accel/x86/cpu_dump.h"

#include <cstdarg>
#include <cstdio>

namespace kiln::accel::x86 {

namespace {

void append(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void append(std::string& out, const char* fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        out.append(buf, size_t(n) < sizeof buf ? size_t(n) : sizeof buf - 1);
}

using ull = unsigned long long;

// QEMU keeps a segment's flags as the descriptor's high dword with the base
// and limit bits masked out: type/S/DPL/P in bits 8-15, AVL/L/D/G in 20-23.
uint32_t qemu_seg_flags(const SegmentCache& seg)
{
    return (uint32_t(seg.attr & 0xff) << 8) | (uint32_t(seg.attr & 0xf000) << 8);
}

const char* system_type_name(unsigned type, bool long_mode)
{
    static const char* const legacy[16] = { "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate",
        "IntGate16", "TrapGate16", "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32", "Reserved",
        "IntGate32", "TrapGate32" };
    static const char* const lm[16] = { "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved",
        "Reserved", "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64", "Reserved",
        "IntGate64", "TrapGate64" };
    return (long_mode ? lm : legacy)[type & 15];
}

} // namespace

std::string format_segment(const char* name, const SegmentCache& seg, const CpuState& s)
{
    std::string out;
    const bool lma = s.long_mode_active();
    if (lma)
        append(out, "%-3s=%04x %016llx %08x %08x", name, seg.selector, ull(seg.base), seg.limit, qemu_seg_flags(seg));
    else
        append(out, "%-3s=%04x %08x %08x %08x", name, seg.selector, uint32_t(seg.base), seg.limit,
            qemu_seg_flags(seg));
    if (!s.protected_mode() || !(seg.attr & k_seg_p))
        return out;
    append(out, " DPL=%u ", seg.dpl());
    const unsigned type = seg.attr & k_seg_type_mask;
    if (seg.attr & k_seg_s) {
        if (type & 8) { // code
            out += (seg.attr & k_seg_l) ? "CS64" : (seg.attr & k_seg_db) ? "CS32" : "CS16";
            append(out, " [%c%c", (type & 4) ? 'C' : '-', (type & 2) ? 'R' : '-');
        } else {
            out += ((seg.attr & k_seg_db) || lma) ? "DS  " : "DS16";
            append(out, " [%c%c", (type & 4) ? 'E' : '-', (type & 2) ? 'W' : '-');
        }
        append(out, "%c]", (type & 1) ? 'A' : '-');
    } else {
        out += system_type_name(type, lma);
    }
    return out;
}

std::string format_cpu_state(const CpuState& s)
{
    std::string out;
    const bool lma = s.long_mode_active();
    const uint64_t f = s.rflags;
    const unsigned shadow = s.events.interrupt_shadow ? 1 : 0;
    char flag_chars[8] = { (f & k_flag_df) ? 'D' : '-', (f & k_flag_of) ? 'O' : '-', (f & k_flag_sf) ? 'S' : '-',
        (f & k_flag_zf) ? 'Z' : '-', (f & k_flag_af) ? 'A' : '-', (f & k_flag_pf) ? 'P' : '-',
        (f & k_flag_cf) ? 'C' : '-', 0 };
    if (lma) {
        static const char* const names[16] = { "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8 ", "R9 ",
            "R10", "R11", "R12", "R13", "R14", "R15" };
        // QEMU's order: RAX RBX RCX RDX / RSI RDI RBP RSP / R8.. / R12..
        static const unsigned order[16] = { 0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15 };
        for (unsigned i = 0; i < 16; i++)
            append(out, "%s=%016llx%c", names[order[i]], ull(s.gpr[order[i]]), (i & 3) == 3 ? '\n' : ' ');
        append(out, "RIP=%016llx RFL=%08x [%s] CPL=%u II=%u A20=1 SMM=0 HLT=%u\n", ull(s.rip), uint32_t(f),
            flag_chars, s.cpl(), shadow, s.halted ? 1u : 0u);
    } else {
        static const char* const names[8] = { "EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI" };
        static const unsigned order[8] = { 0, 3, 1, 2, 6, 7, 5, 4 };
        for (unsigned i = 0; i < 8; i++)
            append(out, "%s=%08x%c", names[order[i]], uint32_t(s.gpr[order[i]]), (i & 3) == 3 ? '\n' : ' ');
        append(out, "EIP=%08x EFL=%08x [%s] CPL=%u II=%u A20=1 SMM=0 HLT=%u\n", uint32_t(s.rip), uint32_t(f),
            flag_chars, s.cpl(), shadow, s.halted ? 1u : 0u);
    }
    static const char* const seg_names[6] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    for (unsigned i = 0; i < k_seg_count; i++)
        out += format_segment(seg_names[i], s.seg[i], s) + "\n";
    out += format_segment("LDT", s.ldtr, s) + "\n";
    out += format_segment("TR", s.tr, s) + "\n";
    if (lma) {
        append(out, "GDT=     %016llx %08x\n", ull(s.gdtr.base), unsigned(s.gdtr.limit));
        append(out, "IDT=     %016llx %08x\n", ull(s.idtr.base), unsigned(s.idtr.limit));
        append(out, "CR0=%08x CR2=%016llx CR3=%016llx CR4=%08x\n", uint32_t(s.cr0), ull(s.cr2), ull(s.cr3),
            uint32_t(s.cr4));
        for (unsigned i = 0; i < 4; i++)
            append(out, "DR%u=%016llx%c", i, ull(s.dr[i]), i == 3 ? '\n' : ' ');
        append(out, "DR6=%016llx DR7=%016llx\n", ull(s.dr[6]), ull(s.dr[7]));
    } else {
        append(out, "GDT=     %08x %08x\n", uint32_t(s.gdtr.base), unsigned(s.gdtr.limit));
        append(out, "IDT=     %08x %08x\n", uint32_t(s.idtr.base), unsigned(s.idtr.limit));
        append(out, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", uint32_t(s.cr0), uint32_t(s.cr2), uint32_t(s.cr3),
            uint32_t(s.cr4));
        for (unsigned i = 0; i < 4; i++)
            append(out, "DR%u=%08x%c", i, uint32_t(s.dr[i]), i == 3 ? '\n' : ' ');
        append(out, "DR6=%08x DR7=%08x\n", uint32_t(s.dr[6]), uint32_t(s.dr[7]));
    }
    append(out, "EFER=%016llx\n", ull(s.efer));
    return out;
}

} // namespace kiln::accel::x86
