// Tiny guest programs shared by the accelerators' tests. Each one is a
// complete starting CpuState plus memory contents, and writes down what
// the CPU must look like when it ends, so KVM and the interpreter are
// checked against the same expectations and against each other.
//
// Guest-physical layout (RAM is 2 MiB from 0):
//   0x0500  GDT: null, 0x08 flat code32, 0x10 flat data, 0x18 code64
//   0x0520  GDT pointer (limit 0x1f, base 0x500); 0x0530 an empty IDT pointer
//   0x1000  code entry; 0x1100 / 0x1200 interrupt handlers (vectors 2 and 0x20 / 0x30)
//   0x2000  PML4 -> 0x3000 PDPT -> 0x4000 PD (0-2 MiB identity, 2 MiB page)
//                           \-> 0x5000 PD (0xe0000000 2 MiB page, uncached: the MMIO test device)
//   0x6000  IDT (protected mode, 256 gates, limit 0x7ff)
//   0x8000  top of stack; 0x9000 string I/O data
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel/x86/cpu_state.h"
#include "tests/unit/accel/fake_vcpu_host.h"

namespace kiln::test {

namespace x86 = accel::x86;

inline constexpr uint64_t k_payload_ram_bytes = 2ull << 20;

struct MemoryBlob {
    uint64_t gpa = 0;
    std::vector<uint8_t> bytes;
};

// How a payload ends: HLT with nothing to wake it (the host says stop), a
// kick from the host (the i8042 reset), or a reset exit (triple fault).
enum class PayloadEnd { Stopped, Kicked, Reset };

struct ExpectedCpu {
    std::vector<std::pair<x86::Gpr, uint64_t>> gprs;
    uint64_t rip = 0;
    uint64_t cr0 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t efer = 0;
    uint16_t cs = 0;
    uint16_t ss = 0;
    uint16_t ds = 0;
    bool cs_long = false;
    bool interrupts_enabled = false;
};

struct Payload {
    std::string name;
    std::string description;
    std::vector<MemoryBlob> memory;
    x86::CpuState initial;
    std::vector<uint8_t> irqs_at_start; // queued in the host before running
    std::optional<uint8_t> timer_vector; // fires when the guest halts with nothing pending
    bool nmi_at_start = false; // an NMI latched in the host before running
    PayloadEnd end = PayloadEnd::Stopped;
    bool check_cpu = true; // false: the end state is not architecturally defined
    ExpectedCpu expected;
    std::vector<PioWrite> pio_writes;
    std::vector<MmioAccess> mmio;
    std::vector<MemoryBlob> memory_after;
    std::vector<uint8_t> acked;
    unsigned nmis_acked = 0;
    unsigned resets = 0;
};

const std::vector<Payload>& all_payloads();
const Payload& payload(std::string_view name);

// A host with RAM for the payloads and the payload's memory and interrupts loaded.
std::unique_ptr<FakeVcpuHost> make_payload_host(const Payload& p);

// The standard starting states the payloads use.
x86::CpuState real_mode_state(uint16_t ip);
x86::CpuState flat_protected_mode_state(uint32_t eip);
// 64-bit mode on the identity page tables at 0x2000 (CS = 0x18).
x86::CpuState long_mode_state(uint64_t rip);

// gtest expectations: the end state and the host's records match `p`.
void check_payload_result(const Payload& p, FakeVcpuHost& host, const x86::CpuState& s);
// The architectural state two accelerators must agree on after one payload.
void expect_same_architectural_state(const x86::CpuState& a, const x86::CpuState& b);

} // namespace kiln::test
