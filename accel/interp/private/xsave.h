// XSAVE constants shared by exec_xsave.cpp and the CPUID model checks.
#pragma once

#include <cstdint>

#include "accel/x86/cpuid.h"

namespace kiln::accel::interp {

inline constexpr uint64_t k_xcr0_x87 = 1u << 0;
inline constexpr uint64_t k_xcr0_sse = 1u << 1;
inline constexpr uint64_t k_xcr0_avx = 1u << 2;
// Legacy region (512) + XSAVE header (64): the whole area for x87 | SSE.
inline constexpr unsigned k_xsave_area_bytes = 576;

using x86::k_xsave_d1_xgetbv1;
using x86::k_xsave_d1_xsavec;
using x86::k_xsave_d1_xsaveopt;

uint64_t xsave_supported_xcr0(const x86::CpuModel& model);
bool xcr0_valid(const x86::CpuModel& model, uint64_t v);

} // namespace kiln::accel::interp
