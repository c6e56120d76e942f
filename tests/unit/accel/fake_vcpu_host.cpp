#include "tests/unit/accel/fake_vcpu_host.h"

#include <cstring>

namespace kiln::test {

void PrintTo(const PioWrite& w, std::ostream* os)
{
    *os << "out port 0x" << std::hex << w.port << " size " << std::dec << w.size << " value 0x" << std::hex << w.value
        << std::dec;
}

void PrintTo(const MmioAccess& a, std::ostream* os)
{
    *os << (a.write ? "write" : "read") << " 0x" << std::hex << a.gpa << " size " << std::dec << a.size << " value 0x"
        << std::hex << a.value << std::dec;
}

FakeVcpuHost::FakeVcpuHost(std::unique_ptr<hw::GuestMemory> memory)
    : m_memory(std::move(memory))
{
    for (unsigned i = 0; i < k_mmio_test_bytes; i++)
        m_mmio_regs[i] = uint8_t(0x10 + i);
}

uint32_t FakeVcpuHost::pio_read(uint16_t port, unsigned size)
{
    if (on_pio_read)
        on_pio_read();
    if (port == k_port_counter)
        return ++m_counter;
    return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

void FakeVcpuHost::pio_write(uint16_t port, unsigned size, uint32_t value)
{
    pio_writes.push_back({ port, size, value });
    if (on_pio_write)
        on_pio_write();
    if (port == k_port_i8042 && size == 1 && value == 0xfe)
        request_reset();
}

uint64_t FakeVcpuHost::mmio_read(uint64_t gpa, unsigned size)
{
    uint64_t v = ~0ull >> (64 - 8 * size);
    if (gpa >= k_mmio_test_base && gpa - k_mmio_test_base + size <= k_mmio_test_bytes) {
        v = 0;
        std::memcpy(&v, m_mmio_regs + (gpa - k_mmio_test_base), size);
    }
    mmio.push_back({ false, gpa, size, v });
    if (on_mmio_read)
        on_mmio_read();
    return v;
}

void FakeVcpuHost::mmio_write(uint64_t gpa, unsigned size, uint64_t value)
{
    // A device sees `size` bytes. The interpreter may leave bits above them
    // set (a sign-extended imm32 store), KVM never does; record what the
    // device sees so both accelerators compare equal.
    if (size < 8)
        value &= (1ull << (8 * size)) - 1;
    mmio.push_back({ true, gpa, size, value });
    if (on_mmio_write)
        on_mmio_write();
    if (gpa >= k_mmio_test_base && gpa - k_mmio_test_base + size <= k_mmio_test_bytes)
        std::memcpy(m_mmio_regs + (gpa - k_mmio_test_base), &value, size);
}

bool FakeVcpuHost::interrupt_pending()
{
    std::lock_guard lock(m_lock);
    return !m_pending.empty();
}

uint8_t FakeVcpuHost::acknowledge_interrupt()
{
    std::lock_guard lock(m_lock);
    if (m_pending.empty())
        return 0xff; // spurious
    uint8_t v = m_pending.front();
    m_pending.pop_front();
    acked.push_back(v);
    return v;
}

bool FakeVcpuHost::nmi_pending()
{
    std::lock_guard lock(m_lock);
    return m_nmi;
}

void FakeVcpuHost::acknowledge_nmi()
{
    std::lock_guard lock(m_lock);
    m_nmi = false;
    nmis_acked++;
}

bool FakeVcpuHost::wait_for_interrupt()
{
    if (on_wait)
        on_wait();
    std::lock_guard lock(m_lock);
    waits++;
    if (!m_pending.empty() || m_nmi)
        return true;
    if (m_timer_vector) {
        m_clock_ns += 1'000'000; // the timer fires 1 ms of virtual time later
        m_pending.push_back(*m_timer_vector);
        m_timer_vector.reset();
        return true;
    }
    if (spurious_wakeups > 0) {
        spurious_wakeups--;
        return true;
    }
    return false;
}

void FakeVcpuHost::request_reset()
{
    resets++;
    if (on_reset)
        on_reset();
}

void FakeVcpuHost::raise_interrupt(uint8_t vector)
{
    std::lock_guard lock(m_lock);
    m_pending.push_back(vector);
}

void FakeVcpuHost::raise_nmi()
{
    std::lock_guard lock(m_lock);
    m_nmi = true;
}

} // namespace kiln::test
