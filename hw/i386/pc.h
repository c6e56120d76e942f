// The `pc` board: an i440FX/PIIX3-style PC. It places every device on the
// port and MMIO buses, wires ISA IRQs to both the 8259 pair and the IOAPIC
// (IRQ 0 to IOAPIC pin 2, as the MADT says), lays out RAM around the PCI
// hole, writes the ACPI tables, and implements accel::VcpuHost: the only
// way an accelerator touches the machine. Device accesses from the vCPU
// thread and from the main loop hold the machine lock (lock()).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "accel/vcpu_host.h"
#include "hw/acpi/acpi_pm.h"
#include "hw/char/uart_16550.h"
#include "hw/core/bus.h"
#include "hw/core/clock.h"
#include "hw/core/guest_memory.h"
#include "hw/core/irq.h"
#include "hw/i386/e820.h"
#include "hw/input/i8042.h"
#include "hw/intc/ioapic.h"
#include "hw/intc/local_apic.h"
#include "hw/intc/pic_8259.h"
#include "hw/misc/system_ports.h"
#include "hw/pci/pci_host.h"
#include "hw/pci/piix3.h"
#include "hw/timer/pit_8254.h"
#include "hw/timer/rtc_mc146818.h"

namespace kiln::hw {

struct PcConfig {
    uint64_t ram_bytes = 128ull << 20;
    int64_t rtc_base_epoch_s = 0;
    // COM1..COM4: a host per present port; nullptr = no such port.
    std::array<SerialHost*, 4> serial = {};
    std::array<bool, 4> serial_present = {};
    ClockMode clock_mode = ClockMode::Host;
};

// What ended or interrupted the run, for system/'s run loop.
enum class MachineEvent : unsigned { None = 0, Reset = 1, Shutdown = 2, Stop = 4 };

class PcMachine;

// Holds the machine lock; on release refreshes the lock-free interrupt
// summary and delivers deferred vCPU kicks. Every device access from
// outside the board (vCPU host calls, chardev input) goes through one.
class MachineLock {
public:
    explicit MachineLock(PcMachine& machine);
    ~MachineLock();
    MachineLock(const MachineLock&) = delete;
    MachineLock& operator=(const MachineLock&) = delete;

private:
    PcMachine& m_machine;
    std::unique_lock<std::mutex> m_lock;
};

class PcMachine final : public accel::VcpuHost {
public:
    static Result<std::unique_ptr<PcMachine>> create(const PcConfig& cfg);
    ~PcMachine() override;

    // accel::VcpuHost
    GuestMemory& memory() override { return *m_memory; }
    uint32_t pio_read(uint16_t port, unsigned size) override;
    void pio_write(uint16_t port, unsigned size, uint32_t value) override;
    uint64_t mmio_read(uint64_t gpa, unsigned size) override;
    void mmio_write(uint64_t gpa, unsigned size, uint64_t value) override;
    bool interrupt_pending() override;
    uint8_t acknowledge_interrupt() override;
    bool nmi_pending() override;
    void acknowledge_nmi() override;
    bool wait_for_interrupt() override;
    void request_reset() override;
    uint64_t virtual_clock_ns() override;

    // The one big lock (see DESIGN.md). Take it through MachineLock, which
    // also refreshes the interrupt summary the vCPU polls without the lock.
    std::mutex& lock() { return m_lock; }

    // Run control, callable from any thread not holding the machine lock.
    void request_shutdown();
    void request_stop();
    // Returns and clears pending events (bitmask of MachineEvent).
    unsigned take_events();
    // The accelerator's kick (run() must return: reset, power-off, stop)
    // and wake (an interrupt became pending; KVM re-checks without
    // returning). Without a wake, interrupts kick.
    void set_vcpu_kick(std::function<void()> kick) { m_vcpu_kick = std::move(kick); }
    void set_vcpu_wake(std::function<void()> wake) { m_vcpu_wake = std::move(wake); }
    // Wakes a halted or running vCPU; used when an interrupt arrives.
    void kick_vcpu();

    // System reset of devices and tables (the CPU is reset by the caller).
    Result<void> reset_devices();

    VirtualClock& clock() { return m_clock; }
    IoBus& pio() { return m_pio; }
    IoBus& mmio() { return m_mmio; }
    const std::vector<E820Entry>& e820() const { return m_e820; }
    uint64_t acpi_rsdp_gpa() const { return m_rsdp_gpa; }
    uint64_t low_ram_bytes() const { return pc_low_ram_bytes(m_config.ram_bytes); }
    const std::vector<DeviceState*>& device_states() const { return m_states; }

    PicPair& pic() { return *m_pic; }
    IoApic& ioapic() { return *m_ioapic; }
    LocalApic& lapic() { return *m_lapic; }
    Pit8254& pit() { return *m_pit; }
    RtcMc146818& rtc() { return *m_rtc; }
    Uart16550* serial(unsigned i) { return i < 4 ? m_serial[i].get() : nullptr; }
    I8042& i8042() { return *m_i8042; }
    AcpiPm& acpi_pm() { return *m_acpi_pm; }
    PciHost& pci() { return *m_pci; }
    DebugPort80& port80() { return m_port80; }
    IrqLine& isa_irq(unsigned n) { return m_isa_irq[n & 15]; }

private:
    friend class MachineLock;
    // Called with m_lock held, at the end of every locked section.
    void refresh_irq_summary();
    // Host clock mode: runs virtual timers at their deadlines even while the
    // vCPU is busy (the interpreter only polls for interrupts when told to),
    // kicking it when one raises an interrupt.
    void timer_thread();
    void stop_timer_thread();
    // -d unimp / guest_errors: accesses nothing claims.
    void log_unassigned(const char* what, const char* space, uint64_t addr, unsigned size, uint64_t value);

    // ISA IRQ n -> PIC pin n and IOAPIC pin n (IRQ 0 -> pin 2).
    class IsaIrqRouter final : public IrqSink {
    public:
        explicit IsaIrqRouter(PcMachine& m) : m_machine(m) {}
        void set_irq(unsigned pin, bool level) override;

    private:
        PcMachine& m_machine;
    };

    explicit PcMachine(const PcConfig& cfg);
    Result<void> build();
    Result<void> map_pio(uint16_t port, uint16_t size, IoRegion& region, const char* name);
    Result<void> write_acpi_tables();
    // With m_lock held (device code).
    void post_event(MachineEvent e);
    // Without it (request_*).
    void post_event_from_outside(MachineEvent e);

    PcConfig m_config;
    std::mutex m_lock;
    std::condition_variable m_wake;
    std::atomic<unsigned> m_events{0};
    bool m_kicked = false; // guarded by m_lock
    bool m_kick_deferred = false; // guarded by m_lock: kick after the summary is fresh
    std::function<void()> m_vcpu_kick;
    std::function<void()> m_vcpu_wake;
    // Lock-free summary for interrupt_pending(): valid until the clock
    // reaches m_summary_deadline_ns (the next timer) or a locked section
    // ends and refreshes it.
    std::atomic<bool> m_summary_pending{false};
    std::atomic<uint64_t> m_summary_deadline_ns{0};
    std::thread m_timer_thread;
    std::mutex m_timer_lock;              // guards the two fields below
    std::condition_variable m_timer_wake;
    uint64_t m_timer_generation = 0;      // bumped when an earlier deadline appears
    bool m_timer_stop = false;

    std::unique_ptr<GuestMemory> m_memory;
    VirtualClock m_clock;
    IoBus m_pio{"pio", 0x10000};
    IoBus m_mmio{"mmio", 1ull << 52};
    std::vector<E820Entry> m_e820;
    uint64_t m_rsdp_gpa = 0;

    IrqLine m_isa_irq[16];
    IsaIrqRouter m_isa_router{*this};
    std::unique_ptr<PicPair> m_pic;
    std::unique_ptr<LocalApic> m_lapic;
    std::unique_ptr<IoApic> m_ioapic;
    std::unique_ptr<Pit8254> m_pit;
    std::unique_ptr<RtcMc146818> m_rtc;
    std::unique_ptr<Uart16550> m_serial[4];
    std::unique_ptr<I8042> m_i8042;
    FnRegion m_kbd_data_io, m_kbd_cmd_io;
    std::unique_ptr<Port92> m_port92;
    DebugPort80 m_port80;
    std::unique_ptr<ResetControl> m_reset_control;
    std::unique_ptr<PciHost> m_pci;
    I440fxHostBridge m_host_bridge;
    std::unique_ptr<Piix3IsaBridge> m_piix3;
    std::unique_ptr<AcpiPm> m_acpi_pm;
    std::vector<DeviceState*> m_states;
    // Declared last: destroyed first, so no region outlives its mapping.
    std::vector<BusMapping> m_mappings;
};

} // namespace kiln::hw
