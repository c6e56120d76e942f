#include "accel/kvm/kvm_cpuid.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kiln::accel::kvm {

namespace {

using x86::CpuidResult;

// Bits Kiln never passes to a guest under KVM, whatever the model says:
// x2APIC and the TSC-deadline timer live in KVM's in-kernel LAPIC, which
// the userspace irqchip path does not create; VMX/SVM would mean nested
// virtualisation state Kiln cannot save; MONITOR/MWAIT are not offered.
constexpr uint32_t k_leaf1_ecx_never = x86::k_cpuid1_ecx_x2apic | x86::k_cpuid1_ecx_tsc_deadline
    | (1u << 3) /* MONITOR */ | (1u << 5) /* VMX */ | x86::k_cpuid1_ecx_osxsave;
constexpr uint32_t k_leaf1_edx_htt = 1u << 28;
constexpr uint32_t k_extleaf1_ecx_svm = 1u << 2;
// AMD's "cores per package" views, which must agree with leaf 1's single
// logical CPU: CmpLegacy, and 0x80000008 ECX's NC (7:0) and
// ApicIdCoreIdSize (15:12).
constexpr uint32_t k_extleaf1_ecx_cmp_legacy = 1u << 1;
constexpr uint32_t k_extleaf8_ecx_core_fields = 0xf0ff;
// IA32_TSC_ADJUST (leaf 7 EBX bit 1) is an MSR CpuState does not carry.
constexpr uint32_t k_leaf7_ebx_tsc_adjust = 1u << 1;

// Leaf 7 features whose state lives in XSAVE components Kiln's CpuState
// does not carry (AVX-512, PKRU, CET, AMX, MPX), or that need MSRs Kiln
// does not migrate (SGX, WAITPKG). `-cpu host` drops them.
constexpr uint32_t k_leaf7_ebx_drop = k_leaf7_ebx_tsc_adjust
    | (1u << 2) /* SGX */ | (1u << 14) /* MPX */ | (1u << 16) /* AVX512F */
    | (1u << 17) /* DQ */ | (1u << 21) /* IFMA */ | (1u << 26) /* PF */ | (1u << 27) /* ER */
    | (1u << 28) /* CD */ | (1u << 30) /* BW */ | (1u << 31) /* VL */;
constexpr uint32_t k_leaf7_ecx_drop = (1u << 1) /* VBMI */ | (1u << 3) /* PKU */ | (1u << 4) /* OSPKE */
    | (1u << 5) /* WAITPKG */ | (1u << 6) /* VBMI2 */ | (1u << 7) /* CET_SS */ | (1u << 11) /* VNNI */
    | (1u << 12) /* BITALG */ | (1u << 14) /* VPOPCNTDQ */ | (1u << 30) /* SGX_LC */;
constexpr uint32_t k_leaf7_edx_drop = (1u << 2) | (1u << 3) /* 4VNNIW, 4FMAPS */ | (1u << 8) /* VP2INTERSECT */
    | (1u << 20) /* CET_IBT */ | (1u << 22) | (1u << 24) | (1u << 25) /* AMX */ | (1u << 23) /* FP16 */;
constexpr uint32_t k_leaf7_1_eax_drop = (1u << 5) /* AVX512_BF16 */ | (1u << 21) /* AMX_FP16 */;
// XSAVE components CpuState carries: x87, SSE, AVX (YMM upper halves).
constexpr uint32_t k_xcr0_kiln = 0x7;
constexpr uint32_t k_leaf_d1_eax_xsaves = 1u << 3;

bool leaf_is_indexed(uint32_t leaf)
{
    switch (leaf) {
    case 4:
    case 7:
    case 0xb:
    case 0xd:
    case 0xf:
    case 0x10:
    case 0x12:
    case 0x14:
    case 0x17:
    case 0x18:
    case 0x1d:
    case 0x1e:
    case 0x1f:
    case 0x8000001d:
        return true;
    default:
        return false;
    }
}

unsigned subleaf_count(uint32_t leaf)
{
    switch (leaf) {
    case 4:
        return 4; // three caches and the null terminator
    case 0xb:
        return 3; // SMT, core, terminator
    case 0xd:
        return 3; // main, XSAVE extensions, AVX component
    default:
        return 1;
    }
}

uint32_t pack4(const char* s)
{
    uint32_t v;
    std::memcpy(&v, s, 4);
    return v;
}

struct MaskedWord {
    uint32_t leaf;
    uint32_t subleaf;
    int reg; // 0 eax, 1 ebx, 2 ecx, 3 edx
    uint32_t always_allowed;
};

constexpr MaskedWord k_masked_words[] = {
    { 1, 0, 2, x86::k_cpuid1_ecx_hypervisor },
    { 1, 0, 3, 0 },
    { 7, 0, 1, 0 },
    { 7, 0, 2, 0 },
    { 7, 0, 3, 0 },
    { 0x80000001, 0, 2, 0 },
    { 0x80000001, 0, 3, 0 },
};

uint32_t& reg_of(CpuidResult& r, int reg)
{
    switch (reg) {
    case 0:
        return r.eax;
    case 1:
        return r.ebx;
    case 2:
        return r.ecx;
    default:
        return r.edx;
    }
}

const char* reg_name(int reg)
{
    static constexpr const char* names[] = { "EAX", "EBX", "ECX", "EDX" };
    return names[reg];
}

CpuidEntry* find_mut(std::vector<CpuidEntry>& table, uint32_t leaf, uint32_t subleaf)
{
    for (auto& e : table)
        if (e.leaf == leaf && (!e.indexed || e.subleaf == subleaf))
            return &e;
    return nullptr;
}

// XSAVE area sizes for leaf 0xD subleaf 0: EBX for XCR0 at reset (x87
// only; KVM recomputes it when the guest sets XCR0), ECX for every
// component in EAX: the legacy region and header, plus AVX's 256 bytes.
void set_xsave_sizes(CpuidResult& r)
{
    r.ebx = 576;
    r.ecx = (r.eax & 4) ? 832 : 576;
}

void add_kvm_leaves(std::vector<CpuidEntry>& out, const std::vector<CpuidEntry>& supported, KvmCpuOptions options)
{
    const CpuidEntry* feat = find_cpuid(supported, k_kvm_cpuid_features, 0);
    if (!feat)
        return;
    uint32_t bits = feat->regs.eax & k_kvm_features_allowed;
    if (!options.kvmclock)
        bits &= ~(k_kvm_feature_clocksource | k_kvm_feature_clocksource2 | k_kvm_feature_clocksource_stable);
    CpuidResult sig;
    sig.eax = k_kvm_cpuid_features;
    sig.ebx = pack4("KVMK");
    sig.ecx = pack4("VMKV");
    sig.edx = pack4("M\0\0\0");
    out.push_back({ k_kvm_cpuid_signature, 0, false, sig });
    out.push_back({ k_kvm_cpuid_features, 0, false, CpuidResult { bits, 0, 0, 0 } });
}

} // namespace

const CpuidEntry* find_cpuid(const std::vector<CpuidEntry>& table, uint32_t leaf, uint32_t subleaf)
{
    for (auto& e : table)
        if (e.leaf == leaf && (!e.indexed || e.subleaf == subleaf))
            return &e;
    return nullptr;
}

Result<KvmCpuModel> KvmCpuModel::by_name(
    std::string_view name, const std::vector<CpuidEntry>& supported, KvmCpuOptions options)
{
    if (name == "host")
        return host(supported, options);
    auto model = x86::CpuModel::by_name(name);
    if (!model)
        return std::move(model).error();
    return from_model(*model, supported, options);
}

KvmCpuModel KvmCpuModel::from_model(
    const x86::CpuModel& model, const std::vector<CpuidEntry>& supported, KvmCpuOptions options)
{
    KvmCpuModel m;
    m.m_name = model.name();
    m.m_signature = model.signature();
    uint32_t max_leaf = model.query(0, 0, 0, false).eax;
    uint32_t max_ext = model.query(0x80000000, 0, 0, false).eax;
    auto add_range = [&](uint32_t first, uint32_t last) {
        for (uint32_t leaf = first; leaf <= last; leaf++) {
            bool indexed = leaf_is_indexed(leaf);
            for (uint32_t sub = 0; sub < (indexed ? subleaf_count(leaf) : 1); sub++)
                m.m_entries.push_back({ leaf, sub, indexed, model.query(leaf, sub, 0, false) });
        }
    };
    add_range(0, max_leaf);
    add_range(0x80000000, max_ext);

    for (auto& w : k_masked_words) {
        CpuidEntry* e = find_mut(m.m_entries, w.leaf, w.subleaf);
        if (!e)
            continue;
        const CpuidEntry* s = find_cpuid(supported, w.leaf, w.subleaf);
        CpuidResult sup = s ? s->regs : CpuidResult {};
        uint32_t& want = reg_of(e->regs, w.reg);
        uint32_t allowed = reg_of(sup, w.reg) | w.always_allowed;
        if (w.leaf == 1 && w.reg == 2)
            allowed &= ~k_leaf1_ecx_never;
        uint32_t missing = want & ~allowed;
        for (unsigned bit = 0; bit < 32; bit++)
            if (missing & (1u << bit)) {
                char buf[64];
                if (w.leaf == 7)
                    std::snprintf(buf, sizeof buf, "CPUID.07H.00H:%s[bit %u]", reg_name(w.reg), bit);
                else
                    std::snprintf(buf, sizeof buf, "CPUID.%02XH:%s[bit %u]", w.leaf, reg_name(w.reg), bit);
                m.m_dropped.emplace_back(buf);
            }
        want &= allowed;
    }
    // XSAVE leaf: never more than KVM and CpuState support, and sizes that
    // match the components left.
    if (CpuidEntry* d = find_mut(m.m_entries, 0xd, 0)) {
        const CpuidEntry* s = find_cpuid(supported, 0xd, 0);
        d->regs.eax &= (s ? s->regs.eax : 0) & k_xcr0_kiln;
        d->regs.edx = 0;
        if (d->regs.eax)
            set_xsave_sizes(d->regs);
        else
            d->regs = {}; // no XSAVE (the interpreter's models today)
        if (!(d->regs.eax & 4))
            std::erase_if(m.m_entries, [](const CpuidEntry& e) { return e.leaf == 0xd && e.subleaf == 2; });
    }
    add_kvm_leaves(m.m_entries, supported, options);
    return m;
}

KvmCpuModel KvmCpuModel::host(const std::vector<CpuidEntry>& supported, KvmCpuOptions options)
{
    KvmCpuModel m;
    m.m_name = "host";
    for (const CpuidEntry& src : supported) {
        CpuidEntry e = src;
        CpuidResult& r = e.regs;
        switch (e.leaf) {
        case 1:
            m.m_signature = r.eax;
            // One logical processor per package; the APIC ID is per vCPU.
            r.ebx = (r.ebx & 0xffff) | (1u << 16);
            r.ecx = (r.ecx & ~k_leaf1_ecx_never) | x86::k_cpuid1_ecx_hypervisor;
            r.edx &= ~k_leaf1_edx_htt;
            break;
        case 4:
            r.eax &= 0x3fff; // no sharing threads, one core
            break;
        case 7:
            if (e.subleaf == 0) {
                r.ebx &= ~k_leaf7_ebx_drop;
                r.ecx &= ~k_leaf7_ecx_drop;
                r.edx &= ~k_leaf7_edx_drop;
            } else if (e.subleaf == 1) {
                r.eax &= ~k_leaf7_1_eax_drop;
                r.edx = 0;
            }
            break;
        case 0xa: // no virtual PMU: its MSRs are not part of Kiln's state
            r = {};
            break;
        case 0xb:
            if (e.subleaf < 2) {
                r.eax = 0;
                r.ebx = 1;
                r.ecx = e.subleaf | ((e.subleaf + 1) << 8);
            } else {
                r = {};
                r.ecx = e.subleaf;
            }
            break;
        case 0xd:
            if (e.subleaf == 0) {
                r.eax &= k_xcr0_kiln;
                r.edx = 0;
                set_xsave_sizes(r);
            } else if (e.subleaf == 1) {
                r.eax &= ~k_leaf_d1_eax_xsaves;
                r.ebx = r.ecx = r.edx = 0;
            } else if (e.subleaf != 2) {
                continue; // components Kiln does not carry
            }
            break;
        case 0x12:
        case 0x14:
        case 0x1d:
        case 0x1e:
        case 0x1f:
            continue; // SGX, PT, AMX, v2 topology
        case 0x80000001:
            r.ecx &= ~(k_extleaf1_ecx_svm | k_extleaf1_ecx_cmp_legacy);
            break;
        case 0x80000008:
            r.ecx &= ~k_extleaf8_ecx_core_fields;
            break;
        case 0x8000001d:
            r.eax &= ~(0xfffu << 14); // no other thread shares a cache, as leaf 4
            break;
        case 0x8000001e: // AMD topology: ext. APIC ID (per vCPU), one thread per core, node 0
            r = {};
            break;
        case k_kvm_cpuid_signature:
        case k_kvm_cpuid_features:
            continue; // rebuilt below
        default:
            break;
        }
        m.m_entries.push_back(e);
    }
    add_kvm_leaves(m.m_entries, supported, options);
    return m;
}

std::vector<CpuidEntry> KvmCpuModel::entries_for_apic(uint32_t apic_id) const
{
    std::vector<CpuidEntry> out = m_entries;
    for (auto& e : out) {
        if (e.leaf == 1)
            e.regs.ebx = (e.regs.ebx & 0x00ffffff) | (apic_id << 24);
        else if (e.leaf == 0xb || e.leaf == 0x1f)
            e.regs.edx = apic_id;
        else if (e.leaf == 0x8000001e)
            e.regs.eax = apic_id;
    }
    return out;
}

const CpuidEntry* KvmCpuModel::find(uint32_t leaf, uint32_t subleaf) const
{
    return find_cpuid(m_entries, leaf, subleaf);
}

bool KvmCpuModel::has_kvmclock() const
{
    const CpuidEntry* e = find(k_kvm_cpuid_features);
    return e && (e->regs.eax & k_kvm_feature_clocksource2);
}

} // namespace kiln::accel::kvm
