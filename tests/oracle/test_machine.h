// A minimal machine for interpreter tests: a fake VcpuHost over real
// GuestMemory, and helpers that put the CPU into 64-bit mode with an
// identity-mapped first GiB, a GDT/IDT/TSS and one exception stub per vector.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "accel/interp/interpreter.h"
#include "accel/vcpu_host.h"
#include "hw/core/guest_memory.h"

namespace kiln::oracle {

class FakeHost : public accel::VcpuHost {
public:
    explicit FakeHost(uint64_t ram_bytes);

    hw::GuestMemory& memory() override { return *m_mem; }
    uint32_t pio_read(uint16_t port, unsigned size) override;
    void pio_write(uint16_t port, unsigned size, uint32_t value) override;
    uint64_t mmio_read(uint64_t gpa, unsigned size) override;
    void mmio_write(uint64_t gpa, unsigned size, uint64_t value) override;
    bool interrupt_pending() override { return !irqs.empty(); }
    uint8_t acknowledge_interrupt() override;
    bool nmi_pending() override { return nmi; }
    void acknowledge_nmi() override { nmi = false; }
    bool wait_for_interrupt() override;
    void request_reset() override { resets++; }
    uint64_t virtual_clock_ns() override { return clock_ns; }

    uint8_t* ram(uint64_t gpa) { return m_mem->regions()[0].host + gpa; }
    void write(uint64_t gpa, const std::vector<uint8_t>& bytes);

    // Recorded and injected events.
    struct PioWrite {
        uint16_t port;
        unsigned size;
        uint32_t value;
    };
    std::vector<PioWrite> pio_writes;
    std::vector<std::pair<uint64_t, uint64_t>> mmio_writes;
    std::deque<uint8_t> irqs;
    bool nmi = false;
    int resets = 0;
    int halts = 0;
    uint64_t clock_ns = 1000;
    // Called on HLT; return false to stop the vCPU. Default: stop unless an
    // interrupt is queued.
    std::function<bool(FakeHost&)> on_halt;

private:
    std::unique_ptr<hw::GuestMemory> m_mem;
};

// Guest-physical layout used by the helpers (identity mapped).
inline constexpr uint64_t k_gdt = 0x1000;
inline constexpr uint64_t k_tss = 0x2000;
inline constexpr uint64_t k_idt = 0x3000;
inline constexpr uint64_t k_pml4 = 0x10000;
inline constexpr uint64_t k_stubs = 0x80000; // 16 bytes per vector: HLT
inline constexpr uint64_t k_kernel_stack = 0x9f000;
// Selectors as Linux lays out its GDT, so pushed selectors and SYSRET
// targets match native execution.
inline constexpr uint16_t k_sel_code32 = 0x08;
inline constexpr uint16_t k_sel_code64 = 0x10;
inline constexpr uint16_t k_sel_data = 0x18;
inline constexpr uint16_t k_sel_user_code32 = 0x23;
inline constexpr uint16_t k_sel_user_data = 0x2b;
inline constexpr uint16_t k_sel_user_code64 = 0x33;
inline constexpr uint16_t k_sel_tss = 0x40;

// Writes GDT, TSS, IDT (every vector -> k_stubs + 16*v, DPL 3 gates so INT n
// works from user mode), page tables (first GiB, 2 MiB user pages), and puts
// the CPU in 64-bit mode at CPL `cpl` (0 or 3).
void setup_long_mode(accel::interp::Interpreter& cpu, FakeHost& host, unsigned cpl);

// An interpreter for `model` ("max", "qemu64") on `host`; nullptr (and a
// message on stderr) if either cannot be created.
std::unique_ptr<accel::interp::Interpreter> make_interpreter(FakeHost& host, const char* model);

// If RIP is inside the exception stubs, the vector that was delivered; -1 otherwise.
int delivered_vector(const accel::x86::CpuState& s);

} // namespace kiln::oracle
