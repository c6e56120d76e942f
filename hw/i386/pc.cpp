#include "hw/i386/pc.h"

#include <pthread.h>
#include <signal.h>

#include "hw/acpi/acpi_tables.h"
#include "util/log.h"

namespace kiln::hw {

void PcMachine::IsaIrqRouter::set_irq(unsigned pin, bool level)
{
    m_machine.m_pic->set_irq(pin, level);
    m_machine.m_ioapic->set_irq(pin == 0 ? 2 : pin, level);
}

PcMachine::PcMachine(const PcConfig& cfg) : m_config(cfg), m_clock(cfg.clock_mode) {}

PcMachine::~PcMachine()
{
    stop_timer_thread();
    m_mappings.clear();
}

void PcMachine::stop_timer_thread()
{
    if (!m_timer_thread.joinable())
        return;
    {
        std::lock_guard lk(m_timer_lock);
        m_timer_stop = true;
    }
    m_timer_wake.notify_all();
    m_timer_thread.join();
}

void PcMachine::timer_thread()
{
    for (;;) {
        uint64_t deadline, now, generation;
        {
            MachineLock lk(*this);
            m_clock.run_due();
            deadline = m_clock.next_deadline_ns();
            now = m_clock.now_ns();
            std::lock_guard tl(m_timer_lock);
            generation = m_timer_generation;
        }
        std::unique_lock tl(m_timer_lock);
        auto woken = [&] { return m_timer_stop || m_timer_generation != generation; };
        if (deadline == UINT64_MAX || !m_clock.running())
            m_timer_wake.wait(tl, woken);
        else if (deadline > now)
            m_timer_wake.wait_for(tl, std::chrono::nanoseconds(deadline - now), woken);
        if (m_timer_stop)
            return;
    }
}

Result<std::unique_ptr<PcMachine>> PcMachine::create(const PcConfig& cfg)
{
    if (cfg.ram_bytes < (2ull << 20))
        return Error::invalid("ram size too small: the pc machine needs at least 2 MiB");
    std::unique_ptr<PcMachine> m(new PcMachine(cfg));
    m->m_memory = TRY(GuestMemory::create(cfg.ram_bytes, pc_pci_hole_start(cfg.ram_bytes)));
    TRY(m->build());
    if (cfg.clock_mode == ClockMode::Host) {
        PcMachine* raw = m.get();
        m->m_clock.set_earlier_deadline_hook([raw] {
            {
                std::lock_guard tl(raw->m_timer_lock);
                raw->m_timer_generation++;
            }
            raw->m_timer_wake.notify_all();
        });
        // Signals belong to the main loop's signalfd: the thread starts with
        // all of them blocked (blocking them inside the thread would leave a
        // window before it first runs).
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        m->m_timer_thread = std::thread([raw] { raw->timer_thread(); });
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    return m;
}

Result<void> PcMachine::map_pio(uint16_t port, uint16_t size, IoRegion& region, const char* name)
{
    m_mappings.push_back(TRY(m_pio.map(port, size, region, name)));
    return {};
}

Result<void> PcMachine::build()
{
    auto reset_request = [this] { post_event(MachineEvent::Reset); };
    for (unsigned i = 0; i < 16; i++)
        m_isa_irq[i].connect(m_isa_router, i);

    m_pic = std::make_unique<PicPair>([this](bool level) {
        m_lapic->set_lint(0, level);
        m_ioapic->set_irq(0, level); // virtual wire through IOAPIC pin 0
    });
    m_lapic = std::make_unique<LocalApic>(m_clock, m_pic.get());
    m_ioapic = std::make_unique<IoApic>(*m_lapic);
    m_lapic->set_eoi_handler([this](uint8_t vector) { m_ioapic->eoi(vector); });
    m_lapic->set_kick([this] { kick_vcpu(); });
    m_pit = std::make_unique<Pit8254>(m_clock, m_isa_irq[0]);
    m_rtc = std::make_unique<RtcMc146818>(m_clock, m_isa_irq[8], m_config.rtc_base_epoch_s);
    m_i8042 = std::make_unique<I8042>(m_isa_irq[1], m_isa_irq[12], reset_request);
    m_port92 = std::make_unique<Port92>(reset_request);
    m_reset_control = std::make_unique<ResetControl>(reset_request);
    m_pci = std::make_unique<PciHost>(m_reset_control.get());
    m_piix3 = std::make_unique<Piix3IsaBridge>(m_isa_router, m_ioapic.get());
    TRY(m_pci->attach(0, 0, m_host_bridge));
    TRY(m_pci->attach(1, 0, *m_piix3));
    m_acpi_pm = std::make_unique<AcpiPm>(m_clock, m_isa_irq[AcpiPm::k_sci_irq],
                                         [this] { post_event(MachineEvent::Shutdown); });
    for (unsigned i = 0; i < 4; i++)
        if (m_config.serial_present[i])
            m_serial[i] = std::make_unique<Uart16550>(i, m_clock, m_isa_irq[Uart16550::k_com_irqs[i]],
                                                      m_config.serial[i]);

    m_kbd_data_io = FnRegion([this](uint64_t, unsigned s) { return m_i8042->read(0, s); },
                             [this](uint64_t, unsigned s, uint64_t v) { m_i8042->write(0, s, v); });
    m_kbd_cmd_io = FnRegion([this](uint64_t, unsigned s) { return m_i8042->read(4, s); },
                            [this](uint64_t, unsigned s, uint64_t v) { m_i8042->write(4, s, v); });

    TRY(map_pio(0x20, 2, m_pic->master_region(), "pic-master"));
    TRY(map_pio(0xa0, 2, m_pic->slave_region(), "pic-slave"));
    TRY(map_pio(0x4d0, 2, m_pic->elcr_region(), "elcr"));
    TRY(map_pio(0x40, 4, *m_pit, "pit"));
    TRY(map_pio(0x61, 1, m_pit->port61_region(), "port61"));
    TRY(map_pio(0x70, 2, *m_rtc, "rtc"));
    TRY(map_pio(0x60, 1, m_kbd_data_io, "i8042-data"));
    TRY(map_pio(0x64, 1, m_kbd_cmd_io, "i8042-cmd"));
    TRY(map_pio(0x80, 1, m_port80, "port80"));
    TRY(map_pio(0x92, 1, *m_port92, "port92"));
    TRY(map_pio(0xcf8, 4, m_pci->address_region(), "pci-conf-addr"));
    TRY(map_pio(0xcfc, 4, m_pci->data_region(), "pci-conf-data"));
    TRY(map_pio(AcpiPm::k_base_port, AcpiPm::k_region_bytes, *m_acpi_pm, "acpi-pm"));
    for (unsigned i = 0; i < 4; i++)
        if (m_serial[i])
            TRY(map_pio(Uart16550::k_com_ports[i], 8, *m_serial[i], "serial"));
    m_mappings.push_back(TRY(m_mmio.map(IoApic::k_default_base, 0x1000, *m_ioapic, "ioapic")));
    m_mappings.push_back(TRY(m_mmio.map(LocalApic::k_default_base, 0x1000, *m_lapic, "apic")));

    m_states = {m_pic.get(), m_lapic.get(), m_ioapic.get(), m_pit.get(), m_rtc.get(),
                m_i8042.get(), m_port92.get(), m_pci.get(), m_acpi_pm.get()};
    for (auto& s : m_serial)
        if (s)
            m_states.push_back(s.get());

    m_e820 = build_pc_e820(m_config.ram_bytes);
    uint64_t low = pc_low_ram_bytes(m_config.ram_bytes);
    m_rtc->set_memory_size(low, m_config.ram_bytes - low);
    m_rtc->set_cmos(0x5f, 0); // CPUs - 1
    TRY(write_acpi_tables());
    return {};
}

Result<void> PcMachine::write_acpi_tables()
{
    AcpiConfig cfg;
    cfg.pci_mem_start = uint32_t(pc_low_ram_bytes(m_config.ram_bytes));
    AcpiTables t = build_acpi_tables(cfg);
    if (t.blob.size() > 0x20000)
        return Error::internal("ACPI tables do not fit the BIOS area");
    TRY(m_memory->write(cfg.base_gpa, t.blob.data(), t.blob.size()));
    m_rsdp_gpa = t.rsdp_gpa;
    return {};
}

Result<void> PcMachine::reset_devices()
{
    MachineLock lk(*this);
    m_pic->reset();
    m_lapic->reset();
    m_ioapic->reset();
    m_pit->reset();
    m_rtc->reset();
    m_i8042->reset();
    m_port92->reset();
    m_pci->reset();
    m_acpi_pm->reset();
    for (auto& s : m_serial)
        if (s)
            s->reset();
    return write_acpi_tables();
}

uint32_t PcMachine::pio_read(uint16_t port, unsigned size)
{
    MachineLock lk(*this);
    if (Log::enabled(LogCategory::Unimp) && !m_pio.name_at(port))
        log_unassigned("read from", "port", port, size, 0);
    return uint32_t(m_pio.read(port, size));
}

void PcMachine::pio_write(uint16_t port, unsigned size, uint32_t value)
{
    MachineLock lk(*this);
    if (Log::enabled(LogCategory::Unimp) && !m_pio.name_at(port))
        log_unassigned("write to", "port", port, size, value);
    m_pio.write(port, size, value);
}

void PcMachine::log_unassigned(const char* what, const char* space, uint64_t addr, unsigned size, uint64_t value)
{
    char buf[128];
    snprintf(buf, sizeof buf, "pc: %s unassigned %s 0x%llx (size %u, value 0x%llx)", what, space,
             (unsigned long long)addr, size, (unsigned long long)value);
    Log::write(LogCategory::Unimp, buf);
}

uint64_t PcMachine::mmio_read(uint64_t gpa, unsigned size)
{
    MachineLock lk(*this);
    if (Log::enabled(LogCategory::Guest) && !m_mmio.name_at(gpa))
        log_unassigned("read from", "address", gpa, size, 0);
    return m_mmio.read(gpa, size);
}

void PcMachine::mmio_write(uint64_t gpa, unsigned size, uint64_t value)
{
    MachineLock lk(*this);
    if (Log::enabled(LogCategory::Guest) && !m_mmio.name_at(gpa))
        log_unassigned("write to", "address", gpa, size, value);
    m_mmio.write(gpa, size, value);
}

bool PcMachine::interrupt_pending()
{
    // Fast path: nothing changed since the last locked section and no
    // timer is due, so the last answer stands.
    uint64_t deadline = m_summary_deadline_ns.load(std::memory_order_acquire);
    if (m_clock.now_ns() < deadline)
        return m_summary_pending.load(std::memory_order_acquire);
    MachineLock lk(*this);
    m_clock.run_due();
    return m_lapic->interrupt_pending();
}

MachineLock::MachineLock(PcMachine& machine) : m_machine(machine), m_lock(machine.m_lock) {}

MachineLock::~MachineLock()
{
    m_machine.refresh_irq_summary();
    bool kick = m_machine.m_kick_deferred;
    m_machine.m_kick_deferred = false;
    m_lock.unlock();
    if (kick) {
        if (m_machine.m_vcpu_wake)
            m_machine.m_vcpu_wake();
        else if (m_machine.m_vcpu_kick)
            m_machine.m_vcpu_kick();
    }
}

void PcMachine::refresh_irq_summary()
{
    m_summary_pending.store(m_lapic->interrupt_pending(), std::memory_order_release);
    m_summary_deadline_ns.store(m_clock.next_deadline_ns(), std::memory_order_release);
}

uint8_t PcMachine::acknowledge_interrupt()
{
    MachineLock lk(*this);
    return m_lapic->acknowledge();
}

bool PcMachine::nmi_pending()
{
    MachineLock lk(*this);
    return m_lapic->nmi_pending();
}

void PcMachine::acknowledge_nmi()
{
    MachineLock lk(*this);
    m_lapic->acknowledge_nmi();
}

bool PcMachine::wait_for_interrupt()
{
    MachineLock guard(*this);
    std::unique_lock<std::mutex> lk(m_lock, std::adopt_lock);
    // The guard owns the mutex; lk only lends it to the condition variable.
    struct Release {
        std::unique_lock<std::mutex>& l;
        ~Release() { l.release(); }
    } release{lk};
    for (;;) {
        m_clock.run_due();
        if (m_events.load() != 0)
            return false;
        if (m_lapic->interrupt_pending() || m_lapic->nmi_pending()) {
            m_kicked = false;
            return true;
        }
        if (m_kicked) {
            m_kicked = false;
            return true;
        }
        uint64_t deadline = m_clock.next_deadline_ns();
        if (m_clock.mode() == ClockMode::Manual) {
            // Tests: jump straight to the next timer; nothing else can wake us.
            if (deadline == UINT64_MAX)
                return false;
            m_clock.step(deadline - m_clock.now_ns());
            continue;
        }
        if (deadline == UINT64_MAX || !m_clock.running()) {
            m_wake.wait(lk);
        } else {
            uint64_t now = m_clock.now_ns();
            if (deadline > now)
                m_wake.wait_for(lk, std::chrono::nanoseconds(deadline - now));
        }
    }
}

void PcMachine::kick_vcpu()
{
    // Called with m_lock held (device code): the accelerator is kicked
    // when the lock is released, after the interrupt summary is fresh.
    m_kicked = true;
    m_kick_deferred = true;
    m_wake.notify_all();
}

void PcMachine::post_event(MachineEvent e)
{
    m_events.fetch_or(unsigned(e));
    m_wake.notify_all();
    if (m_vcpu_kick)
        m_vcpu_kick();
}

void PcMachine::post_event_from_outside(MachineEvent e)
{
    // A halted vCPU checks m_events and then waits, both under m_lock;
    // passing through the lock between setting the flag and notifying
    // means it either sees the flag or is already waiting (no lost wake-up).
    // The flag is set once: setting it again after the lock would let a
    // take_events() in between see the same request twice.
    m_events.fetch_or(unsigned(e));
    {
        std::lock_guard lk(m_lock);
    }
    m_wake.notify_all();
    if (m_vcpu_kick)
        m_vcpu_kick();
}

// Callers do not hold the machine lock (the vCPU thread on a triple fault,
// the run loop, signal handling).
void PcMachine::request_reset() { post_event_from_outside(MachineEvent::Reset); }
void PcMachine::request_shutdown() { post_event_from_outside(MachineEvent::Shutdown); }
void PcMachine::request_stop() { post_event_from_outside(MachineEvent::Stop); }
unsigned PcMachine::take_events() { return m_events.exchange(0); }

uint64_t PcMachine::virtual_clock_ns() { return m_clock.now_ns(); }

} // namespace kiln::hw
