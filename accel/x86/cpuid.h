// CPU models: what CPUID reports, and so which instructions and features
// the guest may use. `qemu64` matches QEMU's baseline model closely enough
// that guests see the same feature set; `max` is everything Kiln's
// interpreter implements (under KVM, `host` will come from the kernel).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace kiln::accel::x86 {

// CPUID.1:EDX
inline constexpr uint32_t k_cpuid1_edx_fpu = 1u << 0;
inline constexpr uint32_t k_cpuid1_edx_vme = 1u << 1;
inline constexpr uint32_t k_cpuid1_edx_de = 1u << 2;
inline constexpr uint32_t k_cpuid1_edx_pse = 1u << 3;
inline constexpr uint32_t k_cpuid1_edx_tsc = 1u << 4;
inline constexpr uint32_t k_cpuid1_edx_msr = 1u << 5;
inline constexpr uint32_t k_cpuid1_edx_pae = 1u << 6;
inline constexpr uint32_t k_cpuid1_edx_mce = 1u << 7;
inline constexpr uint32_t k_cpuid1_edx_cx8 = 1u << 8;
inline constexpr uint32_t k_cpuid1_edx_apic = 1u << 9;
inline constexpr uint32_t k_cpuid1_edx_sep = 1u << 11;
inline constexpr uint32_t k_cpuid1_edx_mtrr = 1u << 12;
inline constexpr uint32_t k_cpuid1_edx_pge = 1u << 13;
inline constexpr uint32_t k_cpuid1_edx_mca = 1u << 14;
inline constexpr uint32_t k_cpuid1_edx_cmov = 1u << 15;
inline constexpr uint32_t k_cpuid1_edx_pat = 1u << 16;
inline constexpr uint32_t k_cpuid1_edx_pse36 = 1u << 17;
inline constexpr uint32_t k_cpuid1_edx_clflush = 1u << 19;
inline constexpr uint32_t k_cpuid1_edx_mmx = 1u << 23;
inline constexpr uint32_t k_cpuid1_edx_fxsr = 1u << 24;
inline constexpr uint32_t k_cpuid1_edx_sse = 1u << 25;
inline constexpr uint32_t k_cpuid1_edx_sse2 = 1u << 26;
// CPUID.1:ECX
inline constexpr uint32_t k_cpuid1_ecx_sse3 = 1u << 0;
inline constexpr uint32_t k_cpuid1_ecx_ssse3 = 1u << 9;
inline constexpr uint32_t k_cpuid1_ecx_cx16 = 1u << 13;
inline constexpr uint32_t k_cpuid1_ecx_pcid = 1u << 17;
inline constexpr uint32_t k_cpuid1_ecx_sse41 = 1u << 19;
inline constexpr uint32_t k_cpuid1_ecx_sse42 = 1u << 20;
inline constexpr uint32_t k_cpuid1_ecx_x2apic = 1u << 21;
inline constexpr uint32_t k_cpuid1_ecx_movbe = 1u << 22;
inline constexpr uint32_t k_cpuid1_ecx_popcnt = 1u << 23;
inline constexpr uint32_t k_cpuid1_ecx_tsc_deadline = 1u << 24;
inline constexpr uint32_t k_cpuid1_ecx_xsave = 1u << 26;
inline constexpr uint32_t k_cpuid1_ecx_osxsave = 1u << 27;
inline constexpr uint32_t k_cpuid1_ecx_hypervisor = 1u << 31;
// CPUID.7.0:EBX
inline constexpr uint32_t k_cpuid7_ebx_fsgsbase = 1u << 0;
inline constexpr uint32_t k_cpuid7_ebx_bmi1 = 1u << 3;
inline constexpr uint32_t k_cpuid7_ebx_smep = 1u << 7;
inline constexpr uint32_t k_cpuid7_ebx_bmi2 = 1u << 8;
inline constexpr uint32_t k_cpuid7_ebx_erms = 1u << 9;
inline constexpr uint32_t k_cpuid7_ebx_invpcid = 1u << 10;
inline constexpr uint32_t k_cpuid7_ebx_fpcsds = 1u << 13; // FCS/FDS deprecated (saved as 0)
inline constexpr uint32_t k_cpuid7_ebx_adx = 1u << 19;
inline constexpr uint32_t k_cpuid7_ebx_smap = 1u << 20;
// CPUID.0xD.1:EAX
inline constexpr uint32_t k_xsave_d1_xsaveopt = 1u << 0;
inline constexpr uint32_t k_xsave_d1_xsavec = 1u << 1;
inline constexpr uint32_t k_xsave_d1_xgetbv1 = 1u << 2;
inline constexpr uint32_t k_xsave_d1_xsaves = 1u << 3;
// CPUID.80000001:EDX
inline constexpr uint32_t k_cpuidx1_edx_syscall = 1u << 11;
inline constexpr uint32_t k_cpuidx1_edx_nx = 1u << 20;
inline constexpr uint32_t k_cpuidx1_edx_pdpe1gb = 1u << 26;
inline constexpr uint32_t k_cpuidx1_edx_rdtscp = 1u << 27;
inline constexpr uint32_t k_cpuidx1_edx_lm = 1u << 29;
// CPUID.80000001:ECX
inline constexpr uint32_t k_cpuidx1_ecx_lahf_lm = 1u << 0;
inline constexpr uint32_t k_cpuidx1_ecx_abm = 1u << 5; // LZCNT

struct CpuidResult {
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

class CpuModel {
public:
    // "qemu64" or "max"; an error naming the model otherwise.
    static Result<CpuModel> by_name(std::string_view name);
    static std::vector<std::string> names();

    const std::string& name() const { return m_name; }
    // Family/model/stepping as CPUID.1:EAX reports it (also EDX after reset).
    uint32_t signature() const { return m_signature; }

    // CPUID for `leaf`/`subleaf` as seen by the CPU with this APIC ID and
    // whose CR4.OSXSAVE is `osxsave` (it is mirrored into leaf 1).
    CpuidResult query(uint32_t leaf, uint32_t subleaf, uint32_t apic_id, bool osxsave) const;

    // Feature words the accelerator tests to decide what the guest may do.
    uint32_t features1_edx() const { return m_f1_edx; }
    uint32_t features1_ecx() const { return m_f1_ecx; }
    uint32_t features7_ebx() const { return m_f7_ebx; }
    uint32_t ext_features_edx() const { return m_fx1_edx; }
    uint32_t ext_features_ecx() const { return m_fx1_ecx; }
    unsigned phys_addr_bits() const { return m_phys_bits; }

    bool has_nx() const { return m_fx1_edx & k_cpuidx1_edx_nx; }
    bool has_pdpe1gb() const { return m_fx1_edx & k_cpuidx1_edx_pdpe1gb; }
    bool has_smep() const { return m_f7_ebx & k_cpuid7_ebx_smep; }
    bool has_smap() const { return m_f7_ebx & k_cpuid7_ebx_smap; }
    bool has_xsave() const { return m_f1_ecx & k_cpuid1_ecx_xsave; }
    bool has_pcid() const { return m_f1_ecx & k_cpuid1_ecx_pcid; }
    bool has_invpcid() const { return m_f7_ebx & k_cpuid7_ebx_invpcid; }

private:
    std::string m_name;
    char m_vendor[13] = {};
    char m_brand[49] = {};
    uint32_t m_signature = 0;
    uint32_t m_max_leaf = 0;
    uint32_t m_max_ext_leaf = 0;
    uint32_t m_f1_edx = 0, m_f1_ecx = 0, m_f7_ebx = 0, m_fx1_edx = 0, m_fx1_ecx = 0;
    uint32_t m_xsave_d1_eax = 0; // CPUID.0xD.1:EAX: XSAVEOPT, XSAVEC, XGETBV ECX=1
    unsigned m_phys_bits = 40;
};

} // namespace kiln::accel::x86
