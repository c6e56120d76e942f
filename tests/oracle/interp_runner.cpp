// Interpreter half of the oracle, and the comparison.
#include <cstdio>
#include <cstring>

#include "accel/interp/interpreter.h"
#include "tests/oracle/oracle.h"
#include "tests/oracle/test_machine.h"

namespace kiln::oracle {

using namespace accel;

namespace {

Fault fault_from_vector(int v)
{
    switch (v) {
    case 0:
        return Fault::DivideError;
    case 1:
    case 3:
        return Fault::Breakpoint;
    case 6:
        return Fault::InvalidOpcode;
    case 17:
        return Fault::AlignmentCheck;
    default:
        return Fault::Protection;
    }
}

} // namespace

Result<std::vector<OracleOutcome>> run_interpreter(const std::vector<OracleCase>& cases)
{
    FakeHost host(16ull << 20);
    auto model = TRY(x86::CpuModel::by_name("max"));
    auto cpu = TRY(interp::Interpreter::create(host, model));
    std::vector<OracleOutcome> out(cases.size());
    for (size_t i = 0; i < cases.size(); i++) {
        const OracleCase& c = cases[i];
        OracleOutcome& r = out[i];
        cpu->reset(x86::ResetKind::PowerOn);
        setup_long_mode(*cpu, host, 3);
        cpu->state().cr0 |= x86::k_cr0_am; // as Linux runs user code natively
        if (model.has_xsave()) { // as Linux: XSAVE enabled (the cases keep RFBM within x87|SSE)
            cpu->state().cr4 |= x86::k_cr4_osxsave;
            cpu->state().xsave.xcr0 = 0x3;
        }
        std::memcpy(host.ram(k_code_addr), c.code.data(), c.code.size());
        // Past the end: UD2, so a run-away sequence faults instead of wandering.
        host.ram(k_code_addr)[c.code.size()] = 0x0f;
        host.ram(k_code_addr)[c.code.size() + 1] = 0x0b;
        cpu->invalidate_code(k_code_addr, 4096);
        std::memcpy(host.ram(k_data_addr), c.in.data, k_data_bytes);
        std::memcpy(host.ram(k_stack_addr), c.in.stack, k_stack_bytes);
        x86::CpuState& s = cpu->state();
        std::memcpy(s.gpr, c.in.gpr, sizeof s.gpr);
        s.rflags = c.in.rflags;
        std::memcpy(s.fpu.xmm, c.in.xmm, sizeof c.in.xmm);
        s.fpu.mxcsr = c.in.mxcsr;
        s.fpu.fcw = c.in.fcw;
        s.fpu.fsw = c.in.fsw;
        s.fpu.ftw = c.in.ftw;
        std::memcpy(s.fpu.st, c.in.st, sizeof c.in.st);
        s.rip = k_code_addr;
        if (c.mode16) {
            s.segment(x86::Seg::CS) = { 0x07, 0x00fb, 0xffff, k_code_addr };
            s.segment(x86::Seg::DS) = { 0x0f, 0x00f3, k_data_bytes - 1, k_data_addr };
            s.segment(x86::Seg::ES) = s.segment(x86::Seg::DS);
            s.rip = 0;
        }
        if (c.mode32) {
            x86::SegmentCache& cs = s.segment(x86::Seg::CS);
            cs.selector = k_sel_user_code32;
            cs.attr = 0xc0fb;
            cs.limit = 0xffffffff;
            cs.base = 0;
        }
        const uint64_t end = (c.mode16 ? 0 : k_code_addr) + c.code.size();
        r.fault = Fault::None;
        for (int step = 0; step < 256 && s.rip != end; step++) {
            cpu->run(1);
            if (int v = delivered_vector(s); v >= 0) {
                r.fault = fault_from_vector(v);
                break;
            }
        }
        if (r.fault == Fault::None && s.rip != end)
            return Error::internal("oracle: case '" + c.name + "' did not reach its end in the interpreter");
        std::memcpy(r.out.gpr, s.gpr, sizeof r.out.gpr);
        r.out.rflags = s.rflags;
        std::memcpy(r.out.xmm, s.fpu.xmm, sizeof r.out.xmm);
        r.out.mxcsr = s.fpu.mxcsr;
        r.out.fcw = s.fpu.fcw;
        r.out.fsw = s.fpu.fsw;
        r.out.ftw = s.fpu.ftw;
        std::memcpy(r.out.st, s.fpu.st, sizeof r.out.st);
        std::memcpy(r.out.data, host.ram(k_data_addr), k_data_bytes);
        std::memcpy(r.out.stack, host.ram(k_stack_addr), k_stack_bytes);
    }
    return out;
}

std::string compare(const OracleCase& c, const OracleOutcome& native, const OracleOutcome& interp)
{
    static const char* names[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15" };
    std::string diff;
    char buf[160];
    if (native.fault != interp.fault) {
        snprintf(buf, sizeof buf, "fault: native %d, interpreter %d; ", int(native.fault), int(interp.fault));
        return buf;
    }
    if (native.fault == Fault::None) {
        const bool narrow = c.mode32 || c.mode16;
        const int nregs = narrow ? 8 : 16;
        const uint64_t rmask = narrow ? 0xffffffffull : ~0ull;
        for (int r = 0; r < nregs; r++)
            if ((native.out.gpr[r] & rmask) != (interp.out.gpr[r] & rmask)) {
                snprintf(buf, sizeof buf, "%s: native %#llx, interpreter %#llx (in %#llx); ", names[r],
                    (unsigned long long)native.out.gpr[r], (unsigned long long)interp.out.gpr[r],
                    (unsigned long long)c.in.gpr[r]);
                diff += buf;
            }
        // Compare arithmetic flags (minus the undefined ones) and DF/IF/AC.
        uint64_t mask = (0x8d5 | 0x400 | 0x200 | 0x40000) & ~c.undefined_flags;
        if ((native.out.rflags & mask) != (interp.out.rflags & mask)) {
            snprintf(buf, sizeof buf, "rflags: native %#llx, interpreter %#llx (in %#llx, mask %#llx); ",
                (unsigned long long)native.out.rflags, (unsigned long long)interp.out.rflags,
                (unsigned long long)c.in.rflags, (unsigned long long)mask);
            diff += buf;
        }
        if (c.compare_xmm) {
            for (int x = 0; x < 16; x++)
                if (std::memcmp(&native.out.xmm[x], &interp.out.xmm[x], 16) != 0) {
                    snprintf(buf, sizeof buf, "xmm%d: native %016llx%016llx, interpreter %016llx%016llx; ", x,
                        (unsigned long long)native.out.xmm[x].q[1], (unsigned long long)native.out.xmm[x].q[0],
                        (unsigned long long)interp.out.xmm[x].q[1], (unsigned long long)interp.out.xmm[x].q[0]);
                    diff += buf;
                }
            if (native.out.mxcsr != interp.out.mxcsr) {
                snprintf(buf, sizeof buf, "mxcsr: native %#x, interpreter %#x; ", native.out.mxcsr, interp.out.mxcsr);
                diff += buf;
            }
        }
    }
    if (native.fault == Fault::None && c.compare_x87) {
        if (native.out.fcw != interp.out.fcw || native.out.fsw != interp.out.fsw || native.out.ftw != interp.out.ftw) {
            snprintf(buf, sizeof buf, "x87 cw/sw/tw: native %04x/%04x/%02x, interpreter %04x/%04x/%02x; ",
                native.out.fcw, native.out.fsw, native.out.ftw, interp.out.fcw, interp.out.fsw, interp.out.ftw);
            diff += buf;
        }
        for (int i = 0; i < 8; i++)
            if (std::memcmp(&native.out.st[i], &interp.out.st[i], 10) != 0) {
                snprintf(buf, sizeof buf, "st%d: native %04x%016llx, interpreter %04x%016llx; ", i,
                    native.out.st[i].w[4], (unsigned long long)native.out.st[i].q[0], interp.out.st[i].w[4],
                    (unsigned long long)interp.out.st[i].q[0]);
                diff += buf;
            }
    }
    for (unsigned i = 0; i < k_data_bytes; i++)
        if (native.out.data[i] != interp.out.data[i]) {
            snprintf(buf, sizeof buf, "data+%#x: native %02x, interpreter %02x; ", i, native.out.data[i],
                interp.out.data[i]);
            diff += buf;
            break;
        }
    for (unsigned i = 0; i < k_stack_bytes; i++)
        if (native.out.stack[i] != interp.out.stack[i]) {
            snprintf(buf, sizeof buf, "stack+%#x: native %02x, interpreter %02x; ", i, native.out.stack[i],
                interp.out.stack[i]);
            diff += buf;
            break;
        }
    return diff;
}

} // namespace kiln::oracle
