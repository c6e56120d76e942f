// The XSAVE family for the x87 and SSE components (XCR0 bits 0 and 1, the
// only ones Kiln offers): XSAVE, XSAVEOPT, XSAVEC, XRSTOR, XSETBV/XGETBV.
// XSAVES/XRSTORS are not offered (no supervisor components): #UD.
//
// XINUSE is reported as XCR0 & 3 (both components always "in use"): the
// SDM allows a processor to skip the init optimisation, and it keeps
// XSAVEOPT/XSAVEC simple. XRSTOR still initialises components whose
// XSTATE_BV bit is clear.
#include <cstring>

#include "accel/interp/private/cpu.h"
#include "accel/interp/private/x87.h"
#include "accel/interp/private/xsave.h"

namespace kiln::accel::interp {

using namespace x86;

namespace {

constexpr unsigned k_area_bytes = k_xsave_area_bytes; // legacy region + header
constexpr uint64_t k_xcomp_compacted = 1ull << 63;

enum class XsaveKind { Standard, Opt, Compacted };

void check_xsave_enabled(InterpreterImpl& cpu, const DecodedInsn& d)
{
    const CpuState& s = cpu.state();
    if (!cpu.model().has_xsave() || !(s.cr4 & k_cr4_osxsave) || d.lock())
        cpu.raise_ud();
    if (s.cr0 & k_cr0_ts)
        cpu.raise(k_nm);
}

// FIP/FDP in the 32-bit format (no REX.W): offset plus a zero selector.
void legacy_pointer_format(const DecodedInsn& d, bool mode64, FxsaveArea& img)
{
    if (!mode64 || !d.rex_w()) {
        img.fip &= 0xffffffff;
        img.fdp &= 0xffffffff;
    }
}

} // namespace

uint64_t xsave_supported_xcr0(const x86::CpuModel& model) { return model.has_xsave() ? k_xcr0_x87 | k_xcr0_sse : 0; }

bool xcr0_valid(const x86::CpuModel& model, uint64_t v)
{
    // x87 can never be disabled; nothing outside the supported mask.
    return (v & k_xcr0_x87) && !(v & ~xsave_supported_xcr0(model));
}

bool InterpreterImpl::exec_xsave(const DecodedInsn& d)
{
    // 0F AE /4 XSAVE, /5 XRSTOR, /6 XSAVEOPT (no prefix, memory);
    // 0F C7 /4 XSAVEC, /3 XRSTORS, /5 XSAVES.
    const unsigned r = d.reg & 7;
    XsaveKind kind;
    bool restore = false;
    if (d.op == 0x1ae) {
        if (d.mod == 3 || d.has_66() || d.rep() || d.repne() || r < 4 || r > 6)
            return false;
        restore = r == 5;
        kind = r == 6 ? XsaveKind::Opt : XsaveKind::Standard;
        if (r == 6 && !(m_model.query(0xd, 1, 0, false).eax & k_xsave_d1_xsaveopt))
            raise_ud();
    } else if (d.op == 0x1c7 && d.mod != 3 && r == 4) {
        if (!(m_model.query(0xd, 1, 0, false).eax & k_xsave_d1_xsavec))
            raise_ud();
        kind = XsaveKind::Compacted;
    } else {
        return false;
    }
    check_xsave_enabled(*this, d);
    Seg seg = operand_seg(d);
    uint64_t ea = effective_address(d);
    if (ea & 63)
        raise_gp0();
    const bool user = m_cpl == 3;
    const uint64_t lin = linear(seg, ea, k_area_bytes, restore ? Access::Read : Access::Write);
    uint8_t area[k_area_bytes];
    read_linear_bytes(lin, area, k_area_bytes, user);
    FxsaveArea& fpu = m_s.fpu;
    const uint64_t xcr0 = m_s.xsave.xcr0;
    const uint64_t rfbm = xcr0 & ((m_s.gpr[k_rdx] << 32) | (m_s.gpr[k_rax] & 0xffffffff));
    const uint64_t xinuse = xcr0 & (k_xcr0_x87 | k_xcr0_sse);
    const unsigned nxmm = m_mode64 ? 16 : 8;
    uint64_t xstate_bv, xcomp_bv;
    std::memcpy(&xstate_bv, area + 512, 8);
    std::memcpy(&xcomp_bv, area + 520, 8);

    if (!restore) {
        FxsaveArea img = fpu;
        legacy_pointer_format(d, m_mode64, img);
        const uint8_t* src = reinterpret_cast<const uint8_t*>(&img);
        if (rfbm & k_xcr0_x87) { // FCW..FDP, ST0-7
            std::memcpy(area, src, 24);
            std::memcpy(area + 32, src + 32, 128);
        }
        if (rfbm & k_xcr0_sse)
            std::memcpy(area + 160, src + 160, nxmm * 16);
        if (rfbm & (k_xcr0_sse | k_xcr0_avx))
            std::memcpy(area + 24, src + 24, 8); // MXCSR, MXCSR_MASK
        if (kind == XsaveKind::Compacted) {
            xstate_bv = rfbm & xinuse;
            xcomp_bv = k_xcomp_compacted | rfbm;
            std::memcpy(area + 520, &xcomp_bv, 8);
        } else {
            xstate_bv = (xstate_bv & ~rfbm) | (rfbm & xinuse);
        }
        std::memcpy(area + 512, &xstate_bv, 8);
        write_linear_bytes(lin, area, k_area_bytes, user);
        return true;
    }

    // XRSTOR: header checks first, then nothing changes on a fault.
    const bool compacted = xcomp_bv & k_xcomp_compacted;
    // Reserved header bytes: 8-23 in the standard form (so XCOMP_BV must be
    // 0), 16-63 in the compacted form.
    for (unsigned i = compacted ? 16 : 8; i < (compacted ? 64u : 24u); i++)
        if (area[512 + i])
            raise_gp0();
    if (compacted) {
        if (!(m_model.query(0xd, 1, 0, false).eax & k_xsave_d1_xsavec) || (xcomp_bv & ~k_xcomp_compacted & ~xcr0)
            || (xstate_bv & ~xcomp_bv))
            raise_gp0();
    } else if (xstate_bv & ~xcr0) {
        raise_gp0();
    }
    FxsaveArea img;
    std::memcpy(&img, area, sizeof img);
    // MXCSR: the standard form loads it whenever SSE (or AVX) is requested;
    // the compacted form only with the component's XSTATE_BV bit.
    bool load_mxcsr = (rfbm & (k_xcr0_sse | k_xcr0_avx))
        && (!compacted || (xstate_bv & rfbm & (k_xcr0_sse | k_xcr0_avx)));
    if (load_mxcsr && (img.mxcsr & ~fpu.mxcsr_mask))
        raise_gp0();
    if (rfbm & k_xcr0_x87) {
        if (xstate_bv & k_xcr0_x87) {
            x87_load_image(fpu, img);
        } else { // x87 init state: FNINIT's, with the registers zeroed
            x87_init(fpu);
            std::memset(fpu.st, 0, sizeof fpu.st);
        }
    }
    if (rfbm & k_xcr0_sse) {
        if (xstate_bv & k_xcr0_sse)
            std::memcpy(fpu.xmm, img.xmm, nxmm * 16);
        else
            std::memset(fpu.xmm, 0, nxmm * 16);
    }
    if (load_mxcsr)
        fpu.mxcsr = img.mxcsr;
    else if (compacted && (rfbm & (k_xcr0_sse | k_xcr0_avx)))
        fpu.mxcsr = 0x1f80;
    m_s.xsave.xstate_bv = (m_s.xsave.xstate_bv & ~rfbm) | (xstate_bv & rfbm);
    return true;
}

bool InterpreterImpl::exec_xsetbv()
{
    // 0F 01 D1: CR4.OSXSAVE, CPL 0, ECX 0 (XCR0 only), a valid value.
    if (!m_model.has_xsave() || !(m_s.cr4 & k_cr4_osxsave))
        raise_ud();
    if (m_cpl != 0 || (m_s.gpr[k_rcx] & 0xffffffff) != 0)
        raise_gp0();
    uint64_t v = (m_s.gpr[k_rdx] << 32) | (m_s.gpr[k_rax] & 0xffffffff);
    if (!xcr0_valid(m_model, v))
        raise_gp0();
    m_s.xsave.xcr0 = v;
    end_block();
    return true;
}

bool InterpreterImpl::exec_xgetbv()
{
    // 0F 01 D0: ECX 0 reads XCR0, ECX 1 (when offered) XCR0 & XINUSE.
    if (!m_model.has_xsave() || !(m_s.cr4 & k_cr4_osxsave))
        raise_ud();
    uint32_t index = uint32_t(m_s.gpr[k_rcx]);
    uint64_t v;
    if (index == 0)
        v = m_s.xsave.xcr0;
    else if (index == 1 && (m_model.query(0xd, 1, 0, false).eax & k_xsave_d1_xgetbv1))
        v = m_s.xsave.xcr0 & (k_xcr0_x87 | k_xcr0_sse);
    else
        raise_gp0();
    m_s.gpr[k_rax] = v & 0xffffffff;
    m_s.gpr[k_rdx] = v >> 32;
    return true;
}

} // namespace kiln::accel::interp
