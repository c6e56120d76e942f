#include "accel/kvm/kvm_msrs.h"

namespace kiln::accel::kvm {

namespace {

constexpr uint32_t k_msr_sysenter_cs = 0x174;
constexpr uint32_t k_msr_sysenter_esp = 0x175;
constexpr uint32_t k_msr_sysenter_eip = 0x176;
constexpr uint32_t k_msr_mcg_status = 0x17a;
constexpr uint32_t k_msr_misc_enable = 0x1a0;
constexpr uint32_t k_msr_pat = 0x277;
constexpr uint32_t k_msr_mtrr_def_type = 0x2ff;
constexpr uint32_t k_msr_mtrr_phys_base0 = 0x200; // base/mask pairs up to 0x20f
constexpr uint32_t k_msr_spec_ctrl = 0x48;
constexpr uint32_t k_msr_star = 0xc0000081;
constexpr uint32_t k_msr_lstar = 0xc0000082;
constexpr uint32_t k_msr_cstar = 0xc0000083;
constexpr uint32_t k_msr_sfmask = 0xc0000084;
constexpr uint32_t k_msr_kernel_gs_base = 0xc0000102;
constexpr uint32_t k_msr_tsc_aux = 0xc0000103;
// Fixed-range MTRRs in the order x86::Msrs::mtrr_fixed keeps them.
constexpr uint32_t k_mtrr_fixed_msrs[x86::k_mtrr_fixed_count]
    = { 0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f };

bool cpuid_bit(const KvmCpuModel& m, uint32_t leaf, int reg, uint32_t bit)
{
    const CpuidEntry* e = m.find(leaf, 0);
    if (!e)
        return false;
    uint32_t v = reg == 2 ? e->regs.ecx : reg == 3 ? e->regs.edx : e->regs.ebx;
    return v & bit;
}

} // namespace

std::vector<uint32_t> candidate_msrs(const KvmCpuModel& model)
{
    std::vector<uint32_t> out = { k_msr_tsc, k_msr_sysenter_cs, k_msr_sysenter_esp, k_msr_sysenter_eip,
        k_msr_misc_enable, k_msr_pat, k_msr_mcg_status };
    if (cpuid_bit(model, 0x80000001, 3, x86::k_cpuidx1_edx_lm)
        || cpuid_bit(model, 0x80000001, 3, x86::k_cpuidx1_edx_syscall))
        for (uint32_t m : { k_msr_star, k_msr_lstar, k_msr_cstar, k_msr_sfmask, k_msr_kernel_gs_base })
            out.push_back(m);
    if (cpuid_bit(model, 0x80000001, 3, x86::k_cpuidx1_edx_rdtscp))
        out.push_back(k_msr_tsc_aux);
    if (cpuid_bit(model, 1, 3, x86::k_cpuid1_edx_mtrr)) {
        out.push_back(k_msr_mtrr_def_type);
        for (uint32_t m : k_mtrr_fixed_msrs)
            out.push_back(m);
        for (uint32_t i = 0; i < 2 * x86::k_mtrr_var_count; i++)
            out.push_back(k_msr_mtrr_phys_base0 + i);
    }
    // SPEC_CTRL: Intel's IBRS/IBPB bit, or AMD's IBRS, STIBP, SSBD or PSFD
    // (CPUID 0x80000008 EBX), any of which makes the MSR writable.
    constexpr uint32_t k_amd_spec_ctrl_bits = (1u << 14) | (1u << 15) | (1u << 24) | (1u << 28);
    if (cpuid_bit(model, 7, 3, 1u << 26) || cpuid_bit(model, 0x80000008, 1, k_amd_spec_ctrl_bits))
        out.push_back(k_msr_spec_ctrl);
    // MSR_KVM_WALL_CLOCK_NEW is left out on purpose: writing it makes KVM
    // store the wall clock at that guest address at once (restoring it
    // would scribble on guest RAM); the VM clock moves with KVM_SET_CLOCK.
    if (model.has_kvmclock())
        out.push_back(k_msr_kvm_system_time_new);
    return out;
}

uint64_t* msr_field(x86::CpuState& s, uint32_t index)
{
    x86::Msrs& m = s.msr;
    switch (index) {
    case k_msr_sysenter_cs:
        return &m.sysenter_cs;
    case k_msr_sysenter_esp:
        return &m.sysenter_esp;
    case k_msr_sysenter_eip:
        return &m.sysenter_eip;
    case k_msr_mcg_status:
        return &m.mcg_status;
    case k_msr_misc_enable:
        return &m.misc_enable;
    case k_msr_pat:
        return &m.pat;
    case k_msr_mtrr_def_type:
        return &m.mtrr_def_type;
    case k_msr_spec_ctrl:
        return &m.spec_ctrl;
    case k_msr_star:
        return &m.star;
    case k_msr_lstar:
        return &m.lstar;
    case k_msr_cstar:
        return &m.cstar;
    case k_msr_sfmask:
        return &m.sfmask;
    case k_msr_kernel_gs_base:
        return &m.kernel_gs_base;
    case k_msr_tsc_aux:
        return &m.tsc_aux;
    case k_msr_kvm_system_time_new:
        return &m.kvm_system_time;
    default:
        break;
    }
    for (unsigned i = 0; i < x86::k_mtrr_fixed_count; i++)
        if (index == k_mtrr_fixed_msrs[i])
            return &m.mtrr_fixed[i];
    if (index >= k_msr_mtrr_phys_base0 && index < k_msr_mtrr_phys_base0 + 2 * x86::k_mtrr_var_count) {
        unsigned i = (index - k_msr_mtrr_phys_base0) / 2;
        return (index & 1) ? &m.mtrr_var_mask[i] : &m.mtrr_var_base[i];
    }
    return nullptr;
}

const char* msr_name(uint32_t index)
{
    switch (index) {
    case k_msr_tsc:
        return "IA32_TSC";
    case k_msr_sysenter_cs:
        return "IA32_SYSENTER_CS";
    case k_msr_sysenter_esp:
        return "IA32_SYSENTER_ESP";
    case k_msr_sysenter_eip:
        return "IA32_SYSENTER_EIP";
    case k_msr_mcg_status:
        return "IA32_MCG_STATUS";
    case k_msr_misc_enable:
        return "IA32_MISC_ENABLE";
    case k_msr_pat:
        return "IA32_PAT";
    case k_msr_mtrr_def_type:
        return "IA32_MTRR_DEF_TYPE";
    case k_msr_spec_ctrl:
        return "IA32_SPEC_CTRL";
    case k_msr_star:
        return "STAR";
    case k_msr_lstar:
        return "LSTAR";
    case k_msr_cstar:
        return "CSTAR";
    case k_msr_sfmask:
        return "SFMASK";
    case k_msr_kernel_gs_base:
        return "KERNEL_GS_BASE";
    case k_msr_tsc_aux:
        return "TSC_AUX";
    case k_msr_kvm_system_time_new:
        return "MSR_KVM_SYSTEM_TIME_NEW";
    default:
        return "MTRR";
    }
}

} // namespace kiln::accel::kvm
