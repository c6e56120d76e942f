// accel/x86: reset state and CPU models.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "accel/x86/cpu_state.h"
#include "accel/x86/cpuid.h"

using namespace kiln::accel::x86;

TEST(CpuState, PowerOnReset)
{
    CpuState s;
    s.gpr[k_rax] = 0x1234;
    s.fpu.xmm[3].q[0] = 7;
    reset_cpu_state(s, ResetKind::PowerOn, 0x50654, true);
    EXPECT_EQ(s.rip, 0xfff0u);
    EXPECT_EQ(s.segment(Seg::CS).selector, 0xf000);
    EXPECT_EQ(s.segment(Seg::CS).base, 0xffff0000u);
    EXPECT_EQ(s.segment(Seg::DS).limit, 0xffffu);
    EXPECT_EQ(s.rflags, 2u);
    EXPECT_EQ(s.cr0, 0x60000010u);
    EXPECT_EQ(s.gpr[k_rdx], 0x50654u);
    EXPECT_EQ(s.gpr[k_rax], 0u);
    EXPECT_EQ(s.dr[7], 0x400u);
    EXPECT_EQ(s.fpu.mxcsr, 0x1f80u);
    EXPECT_EQ(s.fpu.xmm[3].q[0], 0u);
    EXPECT_EQ(s.msr.apic_base, 0xfee00900u);
    EXPECT_EQ(s.msr.pat, 0x0007040600070406ull);
    EXPECT_EQ(s.cpl(), 0u);
    EXPECT_FALSE(s.protected_mode());
}

TEST(CpuState, InitKeepsFpuAndMtrrs)
{
    CpuState s;
    reset_cpu_state(s, ResetKind::PowerOn, 0, false);
    s.fpu.xmm[3].q[0] = 7;
    s.msr.mtrr_def_type = 0xc06;
    s.gpr[k_rbx] = 9;
    reset_cpu_state(s, ResetKind::Init, 0, false);
    EXPECT_EQ(s.fpu.xmm[3].q[0], 7u);
    EXPECT_EQ(s.msr.mtrr_def_type, 0xc06u);
    EXPECT_EQ(s.gpr[k_rbx], 0u);
    EXPECT_EQ(s.msr.apic_base & (1u << 8), 0u); // not the BSP
}

static std::string vendor(const CpuidResult& r)
{
    char v[13] = {};
    std::memcpy(v, &r.ebx, 4);
    std::memcpy(v + 4, &r.edx, 4);
    std::memcpy(v + 8, &r.ecx, 4);
    return v;
}

TEST(CpuModel, Qemu64AndMax)
{
    auto q = CpuModel::by_name("qemu64");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(vendor(q->query(0, 0, 0, false)), "AuthenticAMD");
    CpuidResult l1 = q->query(1, 0, 3, false);
    EXPECT_EQ(l1.ebx >> 24, 3u); // APIC ID
    EXPECT_TRUE(l1.edx & k_cpuid1_edx_sse2);
    EXPECT_TRUE(q->query(0x80000001, 0, 0, false).edx & k_cpuidx1_edx_lm);
    auto m = CpuModel::by_name("max");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(vendor(m->query(0, 0, 0, false)), "GenuineIntel");
    // XSAVE (x87|SSE) exactly when the host has it; OSXSAVE mirrors CR4 only then.
    EXPECT_EQ(m->has_xsave(), bool(__builtin_cpu_supports("xsave")));
    EXPECT_EQ(bool(m->query(1, 0, 0, true).ecx & k_cpuid1_ecx_osxsave), m->has_xsave());
    EXPECT_FALSE(m->query(1, 0, 0, false).ecx & k_cpuid1_ecx_osxsave);
    EXPECT_FALSE(q->has_xsave());
    EXPECT_TRUE(m->query(1, 0, 0, false).ecx & k_cpuid1_ecx_popcnt);
    EXPECT_TRUE(m->query(1, 0, 0, false).ecx & k_cpuid1_ecx_sse3);
    // SSSE3/SSE4 run on the host's units: advertised exactly when it has them.
    bool host_sse4 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("ssse3");
    EXPECT_EQ(bool(m->query(1, 0, 0, false).ecx & k_cpuid1_ecx_sse42), host_sse4);
    EXPECT_EQ(bool(m->query(1, 0, 0, false).ecx & k_cpuid1_ecx_ssse3), host_sse4);
    // Brand string over leaves 0x80000002-4.
    char brand[49] = {};
    for (unsigned i = 0; i < 3; i++) {
        CpuidResult r = m->query(0x80000002 + i, 0, 0, false);
        std::memcpy(brand + 16 * i, &r, 16);
    }
    EXPECT_EQ(std::string(brand), "Kiln interpreter CPU");
    EXPECT_EQ(m->query(0x80000008, 0, 0, false).eax & 0xff, 40u);
    auto bad = CpuModel::by_name("pentium9");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "unable to find CPU model 'pentium9'");
}
