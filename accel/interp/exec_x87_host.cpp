// x87 instructions that are easiest to get exactly right by letting the
// host FPU run them on the guest's state, and the FNSTENV/FNSAVE images.
#include <cstring>

#include "accel/interp/private/x87.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

constexpr uint16_t k_fsw_es_b = 0x8080;

// FXRSTOR the guest image, run one instruction, FXSAVE it back, with the
// host's own FPU/SSE state saved around it inside one asm statement (so
// the compiler never sees its registers change). Not inlined: at a call
// the ABI guarantees the host x87 stack is empty.
#define X87_ON_HOST(insn)                                                                               \
    asm volatile("fxsave64 %0\n\tfxrstor64 %1\n\t" insn "\n\tfxsave64 %1\n\tfxrstor64 %0"              \
                 : "+m"(*host), "+m"(*img)::"memory")

[[gnu::noinline]] bool run_on_host(FxsaveArea* img, FxsaveArea* host, uint8_t modrm)
{
    switch (modrm) {
    case 0xf0:
        X87_ON_HOST("f2xm1");
        return true;
    case 0xf1:
        X87_ON_HOST("fyl2x");
        return true;
    case 0xf2:
        X87_ON_HOST("fptan");
        return true;
    case 0xf3:
        X87_ON_HOST("fpatan");
        return true;
    case 0xf4:
        X87_ON_HOST("fxtract");
        return true;
    case 0xf9:
        X87_ON_HOST("fyl2xp1");
        return true;
    case 0xfb:
        X87_ON_HOST("fsincos");
        return true;
    case 0xfe:
        X87_ON_HOST("fsin");
        return true;
    case 0xff:
        X87_ON_HOST("fcos");
        return true;
    default:
        return false;
    }
}

// Full tag (00 valid, 01 zero, 10 special, 11 empty) of physical register
// `p`, from its contents as the hardware computes it for FNSTENV.
unsigned full_tag(const FxsaveArea& f, unsigned p)
{
    if (!(f.ftw & (1u << p)))
        return 3;
    unsigned top = (f.fsw >> 11) & 7;
    const Vec128& r = f.st[(p - top) & 7];
    uint64_t mant = r.q[0];
    unsigned exp = r.w[4] & 0x7fff;
    if (exp == 0)
        return mant == 0 ? 1 : 2;
    if (exp == 0x7fff || !(mant >> 63))
        return 2;
    return 0;
}

} // namespace

bool x87_host_instruction(FxsaveArea& f, uint8_t modrm)
{
    alignas(16) FxsaveArea img = f;
    alignas(16) FxsaveArea host;
    // All exceptions masked on the host (the guest's unmasked ones only
    // set ES/B below: #MF is not delivered), a benign MXCSR, no pending ES.
    img.fcw = uint16_t(f.fcw | 0x3f);
    img.fsw = uint16_t(f.fsw & ~k_fsw_es_b);
    img.mxcsr = 0x1f80;
    if (!run_on_host(&img, &host, modrm))
        return false;
    uint16_t es = f.fsw & k_fsw_es_b;
    if (img.fsw & ~f.fcw & 0x3f)
        es = k_fsw_es_b;
    f.fsw = uint16_t((img.fsw & ~k_fsw_es_b) | es);
    f.ftw = img.ftw;
    std::memcpy(f.st, img.st, sizeof f.st);
    return true;
}

void x87_init(FxsaveArea& f)
{
    unsigned top = (f.fsw >> 11) & 7;
    Vec128 phys[8];
    for (unsigned p = 0; p < 8; p++)
        phys[p] = f.st[(p - top) & 7];
    std::memcpy(f.st, phys, sizeof phys);
    f.fcw = 0x37f;
    f.fsw = 0;
    f.ftw = 0;
    f.fop = 0;
    f.fip = 0;
    f.fdp = 0;
}

void x87_store_env(InterpreterImpl& cpu, Seg seg, uint64_t ea, unsigned opsize)
{
    FxsaveArea& f = cpu.state().fpu;
    unsigned n = opsize == 2 ? 2 : 4;
    uint16_t tag = 0;
    for (unsigned p = 0; p < 8; p++)
        tag |= uint16_t(full_tag(f, p) << (2 * p));
    // Protected-mode layout: FCW, FSW, FTW, FIP, FCS|FOP<<16, FDP, FDS. The
    // 32-bit form's unused upper halves of FCW, FSW, FTW and FDS read as
    // ones. The selectors are 0: the interpreter does not track them.
    uint64_t hi = n == 4 ? 0xffff0000u : 0;
    uint64_t vals[7] = { f.fcw | hi, f.fsw | hi, tag | hi, uint32_t(f.fip), uint64_t(f.fop & 0x7ff) << 16,
        uint32_t(f.fdp), hi };
    if (n == 2)
        vals[4] = 0;
    cpu.linear(seg, ea, 7 * n, Access::Write);
    for (unsigned k = 0; k < 7; k++)
        cpu.write_mem(seg, ea + k * n, n, vals[k]);
}

void x87_load_env(InterpreterImpl& cpu, Seg seg, uint64_t ea, unsigned opsize)
{
    FxsaveArea& f = cpu.state().fpu;
    unsigned n = opsize == 2 ? 2 : 4;
    uint16_t fcw = uint16_t(cpu.read_mem(seg, ea, 2));
    uint16_t fsw = uint16_t(cpu.read_mem(seg, ea + n, 2));
    uint16_t tag = uint16_t(cpu.read_mem(seg, ea + 2 * n, 2));
    // The registers stay where they are physically: ST(i) names move with TOP.
    unsigned old_top = (f.fsw >> 11) & 7, new_top = (fsw >> 11) & 7;
    Vec128 phys[8];
    for (unsigned p = 0; p < 8; p++)
        phys[p] = f.st[(p - old_top) & 7];
    for (unsigned i = 0; i < 8; i++)
        f.st[i] = phys[(i + new_top) & 7];
    f.fcw = x87_control_word(fcw);
    // ES and B are recomputed: set if an unmasked exception flag is.
    fsw &= uint16_t(~k_fsw_es_b);
    if (fsw & ~f.fcw & 0x3f)
        fsw |= k_fsw_es_b;
    f.fsw = fsw;
    f.ftw = 0;
    for (unsigned p = 0; p < 8; p++)
        if (((tag >> (2 * p)) & 3) != 3)
            f.ftw |= uint8_t(1u << p);
}

void x87_fnsave(InterpreterImpl& cpu, Seg seg, uint64_t ea, unsigned opsize)
{
    FxsaveArea& f = cpu.state().fpu;
    unsigned env = opsize == 2 ? 14 : 28;
    cpu.linear(seg, ea, env + 80, Access::Write);
    x87_store_env(cpu, seg, ea, opsize);
    for (unsigned i = 0; i < 8; i++) {
        cpu.write_mem(seg, ea + env + 10 * i, 8, f.st[i].q[0]);
        cpu.write_mem(seg, ea + env + 10 * i + 8, 2, f.st[i].w[4]);
    }
    x87_init(f);
}

void x87_frstor(InterpreterImpl& cpu, Seg seg, uint64_t ea, unsigned opsize)
{
    FxsaveArea& f = cpu.state().fpu;
    unsigned env = opsize == 2 ? 14 : 28;
    Vec128 regs[8] = {};
    for (unsigned i = 0; i < 8; i++) {
        regs[i].q[0] = cpu.read_mem(seg, ea + env + 10 * i, 8);
        regs[i].w[4] = uint16_t(cpu.read_mem(seg, ea + env + 10 * i + 8, 2));
    }
    x87_load_env(cpu, seg, ea, opsize);
    for (unsigned i = 0; i < 8; i++) {
        f.st[i].q[0] = regs[i].q[0];
        f.st[i].w[4] = regs[i].w[4];
    }
}

} // namespace kiln::accel::interp
