// FakeVcpuHost: a VcpuHost for accelerator tests. It records port and
// MMIO traffic, plays a few test devices, and delivers interrupts that the
// test queues, so a payload's effect can be checked without a board.
//
// Devices:
//   port 0x64  write 0xfe: reset request (i8042 pulse), calls on_reset
//   port 0xe0  read: a counter (1, 2, 3, ...), for string input
//   MMIO 0xe0000000..0xe000001f: 32 bytes of registers, initially
//              0x10, 0x11, ... ; reads return what was last written
// Everything else reads as all ones and ignores writes (as the board).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <vector>

#include "accel/vcpu_host.h"
#include "hw/core/guest_memory.h"

namespace kiln::test {

inline constexpr uint16_t k_port_i8042 = 0x64;
inline constexpr uint16_t k_port_counter = 0xe0;
inline constexpr uint64_t k_mmio_test_base = 0xe0000000;
inline constexpr unsigned k_mmio_test_bytes = 32;

struct PioWrite {
    uint16_t port = 0;
    unsigned size = 0;
    uint32_t value = 0;
    bool operator==(const PioWrite&) const = default;
};

struct MmioAccess {
    bool write = false;
    uint64_t gpa = 0;
    unsigned size = 0;
    uint64_t value = 0; // written, or returned by the read
    bool operator==(const MmioAccess&) const = default;
};

// Readable gtest output for the records.
void PrintTo(const PioWrite& w, std::ostream* os);
void PrintTo(const MmioAccess& a, std::ostream* os);

class FakeVcpuHost final : public accel::VcpuHost {
public:
    explicit FakeVcpuHost(std::unique_ptr<hw::GuestMemory> memory);

    hw::GuestMemory& memory() override { return *m_memory; }
    uint32_t pio_read(uint16_t port, unsigned size) override;
    void pio_write(uint16_t port, unsigned size, uint32_t value) override;
    uint64_t mmio_read(uint64_t gpa, unsigned size) override;
    void mmio_write(uint64_t gpa, unsigned size, uint64_t value) override;
    bool interrupt_pending() override;
    uint8_t acknowledge_interrupt() override;
    bool nmi_pending() override;
    void acknowledge_nmi() override;
    // Fires the armed timer if nothing is pending; stops the vCPU (false)
    // when nothing could ever wake it.
    bool wait_for_interrupt() override;
    void request_reset() override;
    uint64_t virtual_clock_ns() override { return m_clock_ns; }

    // Test controls (thread-safe).
    void raise_interrupt(uint8_t vector);
    void raise_nmi();
    void arm_timer(uint8_t vector) { m_timer_vector = vector; }
    // wait_for_interrupt() returns true this many more times with nothing
    // pending (a wake-up from outside, e.g. the board resuming the VM).
    unsigned spurious_wakeups = 0;
    std::function<void()> on_reset; // e.g. kick the vCPU
    std::function<void()> on_pio_write; // called after each recorded port write
    std::function<void()> on_pio_read; // called inside each port read, before it returns
    std::function<void()> on_mmio_read; // called inside each MMIO read, before it returns
    std::function<void()> on_mmio_write; // called after each recorded MMIO write
    std::function<void()> on_wait; // called as each wait_for_interrupt() starts

    // Records.
    std::vector<PioWrite> pio_writes;
    std::vector<MmioAccess> mmio;
    std::vector<uint8_t> acked;
    unsigned waits = 0;
    unsigned resets = 0;
    unsigned nmis_acked = 0;

private:
    std::unique_ptr<hw::GuestMemory> m_memory;
    std::mutex m_lock;
    std::deque<uint8_t> m_pending;
    bool m_nmi = false;
    std::optional<uint8_t> m_timer_vector;
    uint8_t m_counter = 0;
    uint8_t m_mmio_regs[k_mmio_test_bytes];
    uint64_t m_clock_ns = 1'000'000'000;
};

} // namespace kiln::test
