#include "monitor/memory_dump.h"

#include <algorithm>
#include <cstring>

#include "monitor/text_dump.h"

#if KILN_HAVE_CAPSTONE
#include <capstone/capstone.h>
#endif

namespace kiln::monitor {

int cpu_code_bits(const CpuRegisters& regs)
{
    constexpr uint64_t k_efer_lma = 1u << 10;
    constexpr uint32_t k_desc_l = 1u << 21;
    constexpr uint32_t k_desc_b = 1u << 22;
    if ((regs.efer & k_efer_lma) && (regs.segs[1].flags & k_desc_l))
        return 64;
    if ((regs.cr0 & 1) && (regs.segs[1].flags & k_desc_b))
        return 32;
    return 16;
}

static void print_char(std::string& out, uint8_t c)
{
    out += '\'';
    switch (c) {
    case '\'':
        out += "\\'";
        break;
    case '\\':
        out += "\\\\";
        break;
    case '\n':
        out += "\\n";
        break;
    case '\r':
        out += "\\r";
        break;
    default:
        if (c >= 32 && c <= 126)
            out += char(c);
        else
            out += strprintf("\\x%02x", c);
    }
    out += '\'';
}

std::string format_memory_dump(MachineControl& machine, const DumpRequest& request)
{
    if (request.format == 'i') {
        auto regs = machine.cpu_registers(request.cpu_index);
        int bits = regs ? cpu_code_bits(regs.value()) : 16;
        return disassemble(machine, request.kind, request.cpu_index, request.address, request.count, bits);
    }
    int wsize = request.size;
    if (wsize != 1 && wsize != 2 && wsize != 4 && wsize != 8)
        wsize = 4;
    // QEMU sizes the line and the length by the unit before 'c' forces
    // single bytes.
    const int unit_bytes = wsize;
    int line_size = wsize == 1 ? 8 : 16;
    int max_digits = 0;
    switch (request.format) {
    case 'o':
        max_digits = (wsize * 8 + 2) / 3;
        break;
    case 'u':
    case 'd':
        max_digits = (wsize * 8 * 10 + 32) / 33;
        break;
    case 'c':
        wsize = 1;
        break;
    default:
        max_digits = (wsize * 8) / 4;
        break;
    }
    std::string out;
    uint64_t addr = request.address;
    // count * unit can exceed memory; stop at the first unreadable line.
    uint64_t len = request.count <= 0 ? 0 : uint64_t(request.count) * uint64_t(unit_bytes);
    while (len > 0) {
        if (out.size() > k_max_dump_text_bytes) {
            out += k_dump_truncated_line;
            break;
        }
        out += strprintf("%016llx:", (unsigned long long)addr);
        uint64_t l = std::min<uint64_t>(len, uint64_t(line_size));
        uint8_t buf[16] = {};
        if (!machine.read_memory(request.kind, request.cpu_index, addr, buf, l)) {
            out += " Cannot access memory\n";
            break;
        }
        for (uint64_t i = 0; i + uint64_t(wsize) <= l; i += uint64_t(wsize)) {
            uint64_t v = 0;
            for (int b = 0; b < wsize; ++b) // the guest is little-endian
                v |= uint64_t(buf[i + uint64_t(b)]) << (8 * b);
            out += " ";
            switch (request.format) {
            case 'o':
                out += strprintf("%#*llo", max_digits, (unsigned long long)v);
                break;
            case 'u':
                out += strprintf("%*llu", max_digits, (unsigned long long)v);
                break;
            case 'd':
                out += strprintf("%*lld", max_digits, (long long)v);
                break;
            case 'c':
                print_char(out, uint8_t(v));
                break;
            default:
                out += strprintf("0x%0*llx", max_digits, (unsigned long long)v);
                break;
            }
        }
        out += "\n";
        addr += l;
        len -= l;
    }
    return out;
}

#if KILN_HAVE_CAPSTONE

std::string disassemble(
    MachineControl& machine, AddressKind kind, int64_t cpu_index, uint64_t address, int64_t count, int mode_bits)
{
    std::string out;
    csh handle;
    cs_mode mode = mode_bits == 64 ? CS_MODE_64 : mode_bits == 32 ? CS_MODE_32 : CS_MODE_16;
    if (cs_open(CS_ARCH_X86, mode, &handle) != CS_ERR_OK)
        return "capstone initialisation failed\n";
    cs_option(handle, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
    cs_insn* insn = cs_malloc(handle);
    uint64_t pc = address;
    constexpr int k_split = 8; // bytes per line before the mnemonic, as QEMU's x86 setup
    while (count-- > 0) {
        if (out.size() > k_max_dump_text_bytes) {
            out += k_dump_truncated_line;
            break;
        }
        // An x86 instruction is at most 15 bytes; read 16 so a short
        // mapping near the end of memory still reports the failure.
        uint8_t buf[16];
        if (!machine.read_memory(kind, cpu_index, pc, buf, sizeof buf)) {
            out += strprintf("0x%08llx: unable to read memory\n", (unsigned long long)pc);
            break;
        }
        const uint8_t* code = buf;
        size_t size = sizeof buf;
        uint64_t at = pc;
        if (!cs_disasm_iter(handle, &code, &size, &at, insn)) {
            // Undecodable byte: QEMU prints it as data and moves on.
            out += strprintf(
                "0x%08llx:  %02x                       .byte    0x%02x\n", (unsigned long long)pc, buf[0], buf[0]);
            pc += 1;
            continue;
        }
        int n = insn->size;
        out += strprintf("0x%08llx: ", (unsigned long long)pc);
        for (int i = 0; i < std::min(n, k_split); ++i)
            out += strprintf(" %02x", insn->bytes[i]);
        if (n < k_split)
            out += std::string(size_t((k_split - n) * 3), ' ');
        out += strprintf("  %-8s %s\n", insn->mnemonic, insn->op_str);
        for (int i = k_split; i < n; i += k_split) {
            out += strprintf("0x%08llx: ", (unsigned long long)(pc + uint64_t(i)));
            for (int j = i; j < std::min(n, i + k_split); ++j)
                out += strprintf(" %02x", insn->bytes[j]);
            out += "\n";
        }
        pc += uint64_t(n);
    }
    cs_free(insn, 1);
    cs_close(&handle);
    return out;
}

#else

std::string disassemble(MachineControl&, AddressKind, int64_t, uint64_t, int64_t, int)
{
    return "Asm output not supported on this arch\n";
}

#endif

} // namespace kiln::monitor
