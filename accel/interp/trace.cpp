#include "accel/interp/private/trace.h"

#include <cstdio>
#include <string>

#include "accel/x86/cpu_dump.h"
#include "util/log.h"

#ifdef KILN_HAVE_CAPSTONE
#include <capstone/capstone.h>
#endif

namespace kiln::accel::interp {

using namespace x86;

namespace {

using ull = unsigned long long;

// QEMU prints x86 instructions with the first 8 bytes on the address line
// and any further bytes on continuation lines.
constexpr unsigned k_bytes_per_line = 8;

void hex_bytes(std::string& out, uint64_t pc, const uint8_t* bytes, unsigned len, const std::string& text)
{
    char buf[64];
    snprintf(buf, sizeof buf, "0x%08llx:  ", ull(pc));
    out += buf;
    unsigned first = len < k_bytes_per_line ? len : k_bytes_per_line;
    for (unsigned i = 0; i < first; i++) {
        snprintf(buf, sizeof buf, "%02x ", bytes[i]);
        out += buf;
    }
    out.append((k_bytes_per_line - first) * 3, ' ');
    out += "  " + text + "\n";
    for (unsigned i = k_bytes_per_line; i < len; i += k_bytes_per_line) {
        snprintf(buf, sizeof buf, "0x%08llx:  ", ull(pc + i));
        out += buf;
        for (unsigned j = i; j < len && j < i + k_bytes_per_line; j++) {
            snprintf(buf, sizeof buf, "%02x ", bytes[j]);
            out += buf;
        }
        out += "\n";
    }
}

} // namespace

TraceState::~TraceState()
{
#ifdef KILN_HAVE_CAPSTONE
    for (unsigned i = 0; i < 3; i++)
        if (m_capstone_open[i])
            cs_close(&m_capstone[i]);
#endif
}

void TraceState::in_asm(uint64_t pc, const uint8_t* bytes, unsigned len, CodeSize size)
{
    std::string out;
    if (pc != m_in_asm_next)
        out = "----------------\nIN: \n";
    m_in_asm_next = pc + len;
    std::string text = "(bad)";
#ifdef KILN_HAVE_CAPSTONE
    unsigned i = static_cast<unsigned>(size);
    if (!m_capstone_open[i]) {
        static const cs_mode modes[3] = { CS_MODE_16, CS_MODE_32, CS_MODE_64 };
        csh h;
        if (cs_open(CS_ARCH_X86, modes[i], &h) == CS_ERR_OK) {
            cs_option(h, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
            m_capstone[i] = h;
            m_capstone_open[i] = true;
        }
    }
    if (m_capstone_open[i]) {
        cs_insn* insn = nullptr;
        if (cs_disasm(m_capstone[i], bytes, len, pc, 1, &insn) == 1) {
            char buf[192];
            snprintf(buf, sizeof buf, "%-8s %s", insn->mnemonic, insn->op_str);
            text = buf;
        }
        if (insn)
            cs_free(insn, 1);
    }
#else
    (void)size;
    text = "(no disassembler: built without capstone)";
#endif
    hex_bytes(out, pc, bytes, len, text);
    Log::write(LogCategory::InAsm, out);
}

void TraceState::block(const CpuState& s)
{
    const SegmentCache& cs = s.segment(Seg::CS);
    if (Log::enabled(LogCategory::Exec)) {
        // QEMU: "Trace cpu: host-code [cs_base/pc/flags/cflags] symbol";
        // there is no translated host code here, so that field is 0.
        char buf[128];
        uint64_t pc = s.mode64() ? s.rip : cs.base + s.rip;
        snprintf(buf, sizeof buf, "Trace %u: 0 [%016llx/%016llx/%08x/%08x] ", s.apic_id, ull(cs.base), ull(pc),
            uint32_t(s.rflags), 0u);
        Log::write(LogCategory::Exec, buf);
    }
    if (Log::enabled(LogCategory::Cpu))
        Log::write(LogCategory::Cpu, format_cpu_state(s));
}

void TraceState::event(const CpuState& s, uint8_t vector, bool software, bool external, bool has_error,
    uint32_t error, uint64_t next_rip)
{
    if (external && Log::enabled(LogCategory::InAsm)) {
        char buf[48];
        snprintf(buf, sizeof buf, "Servicing hardware INT=0x%02x", vector);
        Log::write(LogCategory::InAsm, buf);
    }
    if (!Log::enabled(LogCategory::Int))
        return;
    const SegmentCache& cs = s.segment(Seg::CS);
    const SegmentCache& ss = s.segment(Seg::SS);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%6llu: v=%02x e=%04x i=%d cpl=%u IP=%04x:%016llx pc=%016llx SP=%04x:%016llx",
        ull(m_event_count++), vector, has_error ? error : 0u, software ? 1 : 0, s.cpl(), cs.selector,
        ull(next_rip), ull(cs.base + next_rip), ss.selector, ull(s.gpr[k_rsp]));
    // QEMU 7's literal wording for the second field, kept so logs diff cleanly.
    if (vector == 14)
        snprintf(buf + n, sizeof buf - size_t(n), " CR2=%016llx", ull(s.cr2));
    else
        snprintf(buf + n, sizeof buf - size_t(n), " env->regs[R_EAX]=%016llx", ull(s.gpr[k_rax]));
    Log::write(LogCategory::Int, std::string(buf) + "\n" + format_cpu_state(s));
}

void TraceState::reset(const CpuState& s)
{
    m_in_asm_next = ~0ull;
    if (!Log::enabled(LogCategory::CpuReset))
        return;
    char buf[48];
    snprintf(buf, sizeof buf, "CPU Reset (CPU %u)\n", s.apic_id);
    Log::write(LogCategory::CpuReset, buf + format_cpu_state(s));
}

void TraceState::triple_fault(const CpuState& s)
{
    std::string msg = "Triple fault\nRecent blocks (oldest first):";
    uint64_t n = m_recent_pos < k_recent_blocks ? m_recent_pos : k_recent_blocks;
    for (uint64_t i = m_recent_pos - n; i < m_recent_pos; i++) {
        char buf[24];
        snprintf(buf, sizeof buf, " %llx", ull(m_recent[i % k_recent_blocks]));
        msg += buf;
    }
    msg += "\n" + format_cpu_state(s);
    if (Log::enabled(LogCategory::Int))
        Log::write(LogCategory::Int, msg);
    else if (Log::enabled(LogCategory::CpuReset))
        Log::write(LogCategory::CpuReset, msg);
}

} // namespace kiln::accel::interp
