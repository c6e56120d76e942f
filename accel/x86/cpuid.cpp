#include "accel/x86/cpuid.h"

#include <cpuid.h>
#include <cstdio>
#include <cstring>

namespace kiln::accel::x86 {

namespace {

constexpr uint32_t k_base_edx = k_cpuid1_edx_fpu | k_cpuid1_edx_de | k_cpuid1_edx_pse | k_cpuid1_edx_tsc
    | k_cpuid1_edx_msr | k_cpuid1_edx_pae | k_cpuid1_edx_mce | k_cpuid1_edx_cx8 | k_cpuid1_edx_apic | k_cpuid1_edx_sep
    | k_cpuid1_edx_mtrr | k_cpuid1_edx_pge | k_cpuid1_edx_mca | k_cpuid1_edx_cmov | k_cpuid1_edx_pat
    | k_cpuid1_edx_pse36 | k_cpuid1_edx_clflush | k_cpuid1_edx_mmx | k_cpuid1_edx_fxsr | k_cpuid1_edx_sse
    | k_cpuid1_edx_sse2;

uint32_t pack4(const char* s)
{
    uint32_t v;
    std::memcpy(&v, s, 4);
    return v;
}

uint32_t make_signature(unsigned family, unsigned model, unsigned stepping)
{
    uint32_t sig = stepping & 0xf;
    unsigned base_family = family > 0xf ? 0xf : family;
    sig |= (model & 0xf) << 4;
    sig |= base_family << 8;
    if (family == 6 || family == 15)
        sig |= ((model >> 4) & 0xf) << 16;
    if (family > 0xf)
        sig |= ((family - 0xf) & 0xff) << 20;
    return sig;
}

// The host's CPUID, for features `max` offers only when the host has them
// (the oracle tests check the interpreter against the host).
CpuidResult host_cpuid(uint32_t leaf, uint32_t subleaf)
{
    CpuidResult r;
    if (leaf > __get_cpuid_max(0, nullptr))
        return r; // beyond the host's leaves: no such features
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
    return r;
}

} // namespace

Result<CpuModel> CpuModel::by_name(std::string_view name)
{
    CpuModel m;
    m.m_name = std::string(name);
    if (name == "qemu64") {
        // As QEMU's qemu64: AMD vendor, family 15 model 107 stepping 1.
        std::memcpy(m.m_vendor, "AuthenticAMD", 12);
        std::snprintf(m.m_brand, sizeof m.m_brand, "QEMU Virtual CPU version 2.5+");
        m.m_signature = make_signature(15, 107, 1);
        m.m_max_leaf = 0xd;
        m.m_max_ext_leaf = 0x8000000a;
        m.m_f1_edx = k_base_edx;
        m.m_f1_ecx = k_cpuid1_ecx_sse3 | k_cpuid1_ecx_cx16 | k_cpuid1_ecx_hypervisor;
        m.m_fx1_edx = k_cpuidx1_edx_syscall | k_cpuidx1_edx_nx | k_cpuidx1_edx_lm;
        m.m_fx1_ecx = k_cpuidx1_ecx_lahf_lm;
        return m;
    }
    if (name == "max") {
        // Everything the interpreter implements: up to SSE4.2 (run on the
        // host's units, so offered only when the host has them), BMI1/2,
        // ADX, MOVBE, XSAVE for x87|SSE; no AVX, so glibc and the kernel
        // pick their SSE4.2 code paths.
        std::memcpy(m.m_vendor, "GenuineIntel", 12);
        std::snprintf(m.m_brand, sizeof m.m_brand, "Kiln interpreter CPU");
        m.m_signature = make_signature(6, 0x55, 4);
        m.m_max_leaf = 0xd;
        m.m_max_ext_leaf = 0x80000008;
        m.m_f1_edx = k_base_edx;
        m.m_f1_ecx = k_cpuid1_ecx_sse3 | k_cpuid1_ecx_cx16 | k_cpuid1_ecx_popcnt | k_cpuid1_ecx_hypervisor;
        if (__builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2"))
            m.m_f1_ecx |= k_cpuid1_ecx_ssse3 | k_cpuid1_ecx_sse41 | k_cpuid1_ecx_sse42;
        // BMI1/BMI2/ADX/MOVBE are implemented in software but, like SSE4,
        // offered only when the host has them, so the oracle can check them.
        m.m_f1_ecx |= host_cpuid(1, 0).ecx & k_cpuid1_ecx_movbe;
        m.m_f7_ebx = k_cpuid7_ebx_erms | k_cpuid7_ebx_smep | k_cpuid7_ebx_smap;
        // PCID/INVPCID: the software TLB is untagged, so every CR3 write and
        // INVPCID flushes at least what the SDM requires (often more).
        m.m_f1_ecx |= k_cpuid1_ecx_pcid;
        m.m_f7_ebx |= k_cpuid7_ebx_invpcid;
        // The interpreter does not track FCS/FDS: x87 state images hold 0.
        m.m_f7_ebx |= k_cpuid7_ebx_fpcsds;
        m.m_f7_ebx |= host_cpuid(7, 0).ebx & (k_cpuid7_ebx_bmi1 | k_cpuid7_ebx_bmi2 | k_cpuid7_ebx_adx);
        // XSAVE for x87 | SSE (no AVX); XSAVES/XRSTORS are never offered.
        if (host_cpuid(1, 0).ecx & k_cpuid1_ecx_xsave) {
            m.m_f1_ecx |= k_cpuid1_ecx_xsave;
            m.m_xsave_d1_eax = host_cpuid(0xd, 1).eax & (k_xsave_d1_xsaveopt | k_xsave_d1_xsavec | k_xsave_d1_xgetbv1);
        }
        m.m_fx1_edx = k_cpuidx1_edx_syscall | k_cpuidx1_edx_nx | k_cpuidx1_edx_lm | k_cpuidx1_edx_rdtscp
            | k_cpuidx1_edx_pdpe1gb;
        m.m_fx1_ecx = k_cpuidx1_ecx_lahf_lm | k_cpuidx1_ecx_abm;
        return m;
    }
    return Error::invalid("unable to find CPU model '" + std::string(name) + "'");
}

std::vector<std::string> CpuModel::names() { return { "qemu64", "max" }; }

CpuidResult CpuModel::query(uint32_t leaf, uint32_t subleaf, uint32_t apic_id, bool osxsave) const
{
    CpuidResult r;
    // Out-of-range basic leaves return the highest basic leaf (Intel behaviour).
    if (leaf < 0x40000000 && leaf > m_max_leaf)
        leaf = m_max_leaf;
    if (leaf >= 0x80000000 && leaf > m_max_ext_leaf)
        return r;
    switch (leaf) {
    case 0:
        r.eax = m_max_leaf;
        r.ebx = pack4(m_vendor);
        r.edx = pack4(m_vendor + 4);
        r.ecx = pack4(m_vendor + 8);
        break;
    case 1:
        r.eax = m_signature;
        // CLFLUSH line size 8*8 bytes, one logical processor, APIC ID.
        r.ebx = (8u << 8) | (1u << 16) | (apic_id << 24);
        r.ecx = m_f1_ecx | (osxsave && has_xsave() ? k_cpuid1_ecx_osxsave : 0);
        r.edx = m_f1_edx;
        break;
    case 4: {
        // Deterministic cache parameters: L1d, L1i, L2 (one core, one thread).
        static constexpr struct {
            uint32_t type, level, ways, sets;
        } caches[] = { { 1, 1, 8, 64 }, { 2, 1, 8, 64 }, { 3, 2, 16, 1024 } };
        if (subleaf < 3) {
            auto& c = caches[subleaf];
            r.eax = c.type | (c.level << 5) | (1u << 8);
            r.ebx = (64 - 1) | ((c.ways - 1) << 22);
            r.ecx = c.sets - 1;
        }
        break;
    }
    case 7:
        if (subleaf == 0)
            r.ebx = m_f7_ebx;
        break;
    case 0xb:
        // x2APIC topology: one thread per core, one core per package.
        if (subleaf < 2) {
            r.eax = 0;
            r.ebx = 1;
            r.ecx = subleaf | ((subleaf + 1) << 8);
        } else {
            r.ecx = subleaf;
        }
        r.edx = apic_id;
        break;
    case 0xd:
        // XSAVE components: x87 and SSE only, both in the 512-byte legacy
        // region, so every size is legacy region + header (576 bytes).
        if (!has_xsave())
            break;
        if (subleaf == 0) {
            r.eax = 0x3; // XCR0 may enable x87 | SSE
            r.ebx = 576; // size for the components XCR0 enables
            r.ecx = 576; // size for every supported component
        } else if (subleaf == 1) {
            r.eax = m_xsave_d1_eax;
            r.ebx = 576; // compacted size for XCR0 | IA32_XSS (XSS: nothing)
        }
        break;
    case 0x80000000:
        r.eax = m_max_ext_leaf;
        r.ebx = pack4(m_vendor);
        r.edx = pack4(m_vendor + 4);
        r.ecx = pack4(m_vendor + 8);
        break;
    case 0x80000001:
        r.eax = m_signature;
        r.ecx = m_fx1_ecx;
        r.edx = m_fx1_edx;
        break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
        const char* p = m_brand + (leaf - 0x80000002) * 16;
        r.eax = pack4(p);
        r.ebx = pack4(p + 4);
        r.ecx = pack4(p + 8);
        r.edx = pack4(p + 12);
        break;
    }
    case 0x80000005:
        // L1 caches (AMD format): 64 KiB 2-way 64-byte lines, data and code.
        r.ecx = (64u << 24) | (2u << 16) | (1u << 8) | 64u;
        r.edx = r.ecx;
        break;
    case 0x80000006:
        r.ecx = (512u << 16) | (0x6u << 12) | 64u; // 512 KiB L2, 8-way
        break;
    case 0x80000007:
        r.edx = 1u << 8; // invariant TSC: it follows the virtual clock
        break;
    case 0x80000008:
        r.eax = m_phys_bits | (48u << 8);
        break;
    default:
        break;
    }
    return r;
}

} // namespace kiln::accel::x86
