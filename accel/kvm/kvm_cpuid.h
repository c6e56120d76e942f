// CPUID under KVM: what the guest's CPUID instruction returns, as the table
// KVM_SET_CPUID2 takes. Built either from one of Kiln's named models
// (qemu64, max) masked by what KVM supports, or from KVM's own supported
// table for `-cpu host`, filtered into a model Kiln can save and restore.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "accel/x86/cpuid.h"
#include "util/result.h"

namespace kiln::accel::kvm {

struct CpuidEntry {
    uint32_t leaf = 0;
    uint32_t subleaf = 0;
    bool indexed = false; // the subleaf (ECX) selects the entry
    x86::CpuidResult regs;
};

// KVM paravirtual leaves (0x40000000 signature, 0x40000001 features).
inline constexpr uint32_t k_kvm_cpuid_signature = 0x40000000;
inline constexpr uint32_t k_kvm_cpuid_features = 0x40000001;
inline constexpr uint32_t k_kvm_feature_clocksource = 1u << 0;
inline constexpr uint32_t k_kvm_feature_nop_io_delay = 1u << 1;
inline constexpr uint32_t k_kvm_feature_clocksource2 = 1u << 3;
inline constexpr uint32_t k_kvm_feature_clocksource_stable = 1u << 24;
// The PV features Kiln's state covers with a userspace irqchip: kvmclock
// (its two MSRs are in x86::Msrs) and the no-op I/O delay hint. PV EOI,
// PV unhalt and PV IPIs need KVM's in-kernel LAPIC; async page faults and
// steal time add MSRs Kiln does not migrate.
inline constexpr uint32_t k_kvm_features_allowed = k_kvm_feature_clocksource | k_kvm_feature_nop_io_delay
    | k_kvm_feature_clocksource2 | k_kvm_feature_clocksource_stable;

struct KvmCpuOptions {
    bool kvmclock = true; // advertise kvmclock when KVM offers it (QEMU's default)
};

class KvmCpuModel {
public:
    // "host", or a named model of accel/x86/cpuid.h; `supported` is
    // KVM_GET_SUPPORTED_CPUID. Bits the model asks for that KVM lacks are
    // dropped and listed in dropped_features().
    static Result<KvmCpuModel> by_name(
        std::string_view name, const std::vector<CpuidEntry>& supported, KvmCpuOptions options = {});
    static KvmCpuModel from_model(
        const x86::CpuModel& model, const std::vector<CpuidEntry>& supported, KvmCpuOptions options = {});
    static KvmCpuModel host(const std::vector<CpuidEntry>& supported, KvmCpuOptions options = {});

    const std::string& name() const { return m_name; }
    uint32_t signature() const { return m_signature; }
    const std::vector<CpuidEntry>& entries() const { return m_entries; }
    // The table for the vCPU with this initial APIC ID.
    std::vector<CpuidEntry> entries_for_apic(uint32_t apic_id) const;
    // Looks a leaf up as the CPU would (nullptr if absent).
    const CpuidEntry* find(uint32_t leaf, uint32_t subleaf = 0) const;
    // Human-readable "leaf.reg bit" list of requested-but-unsupported bits.
    const std::vector<std::string>& dropped_features() const { return m_dropped; }
    bool has_kvmclock() const;

private:
    std::string m_name;
    uint32_t m_signature = 0;
    std::vector<CpuidEntry> m_entries;
    std::vector<std::string> m_dropped;
};

// Finds leaf/subleaf in a KVM-format table.
const CpuidEntry* find_cpuid(const std::vector<CpuidEntry>& table, uint32_t leaf, uint32_t subleaf);

} // namespace kiln::accel::kvm
