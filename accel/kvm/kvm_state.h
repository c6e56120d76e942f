// Conversion between x86::CpuState and KVM's register structures. Pure
// functions (no ioctls), so they are tested without /dev/kvm; KvmVcpu
// does the ioctls around them.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <linux/kvm.h>

#include "accel/x86/cpu_state.h"

namespace kiln::accel::kvm {

void segment_to_kvm(const x86::SegmentCache& in, kvm_segment& out);
x86::SegmentCache segment_from_kvm(const kvm_segment& in);

void regs_to_kvm(const x86::CpuState& s, kvm_regs& out);
void regs_from_kvm(const kvm_regs& in, x86::CpuState& s);

// Segments, descriptor tables, CRs, EFER, APIC base, and the pending
// external interrupt (KVM's interrupt_bitmap).
void sregs_to_kvm(const x86::CpuState& s, kvm_sregs& out);
void sregs_from_kvm(const kvm_sregs& in, x86::CpuState& s);

// Pending exception / interrupt / NMI and the interrupt shadow.
void events_to_kvm(const x86::CpuState& s, kvm_vcpu_events& out);
void events_from_kvm(const kvm_vcpu_events& in, x86::CpuState& s);

void debugregs_to_kvm(const x86::CpuState& s, kvm_debugregs& out);
void debugregs_from_kvm(const kvm_debugregs& in, x86::CpuState& s);

// XSAVE image in the standard (non-compacted) format KVM_GET/SET_XSAVE
// use: the FXSAVE legacy region, the header's XSTATE_BV, and the AVX
// component at its architectural offset. `area` is at least 4096 bytes.
inline constexpr size_t k_xsave_legacy_bytes = 512;
inline constexpr size_t k_xsave_xstate_bv_offset = 512;
inline constexpr size_t k_xsave_avx_offset = 576;
inline constexpr size_t k_xsave_min_bytes = 4096;
void xsave_to_kvm(const x86::CpuState& s, std::span<uint8_t> area);
void xsave_from_kvm(std::span<const uint8_t> area, x86::CpuState& s);

// Legacy x87/SSE path for kernels without KVM_CAP_XSAVE.
void fpu_to_kvm(const x86::CpuState& s, kvm_fpu& out);
void fpu_from_kvm(const kvm_fpu& in, x86::CpuState& s);

void xcrs_to_kvm(const x86::CpuState& s, kvm_xcrs& out);
void xcrs_from_kvm(const kvm_xcrs& in, x86::CpuState& s);

// QEMU-style register dump for error reports ("RAX=... RBX=...").
std::string format_cpu_state(const x86::CpuState& s);

} // namespace kiln::accel::kvm
