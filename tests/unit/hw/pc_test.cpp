#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct Capture final : SerialHost {
    void transmit(uint8_t b) override { out.push_back(char(b)); }
    std::string out;
};

TEST(PcMachine, PlacesDevicesOnTheirPorts)
{
    MachineHarness m;
    ASSERT_TRUE(m.machine);
    IoBus& pio = m.machine->pio();
    EXPECT_EQ(*pio.name_at(0x20), "pic-master");
    EXPECT_EQ(*pio.name_at(0x43), "pit");
    EXPECT_EQ(*pio.name_at(0x3fd), "serial");
    EXPECT_EQ(pio.name_at(0x2f8), nullptr); // only COM1 configured
    EXPECT_EQ(*m.machine->mmio().name_at(0xfec00010), "ioapic");
    EXPECT_EQ(m.inb(0x2f8), 0xff);
}

TEST(PcMachine, E820HasPciHoleAndHighRam)
{
    auto map = build_pc_e820(4ull << 30);
    uint64_t ram = 0;
    bool high = false;
    for (auto& e : map) {
        if (e.type == E820Type::Ram)
            ram += e.size;
        if (e.type == E820Type::Ram && e.addr >= (1ull << 32))
            high = true;
        if (e.type == E820Type::Ram) {
            EXPECT_FALSE(e.addr < 0xfee01000 && e.addr + e.size > 0xc0000000) << "RAM in the PCI hole";
        }
    }
    EXPECT_TRUE(high);
    // All RAM but the 0x9fc00-0x100000 window is reported.
    EXPECT_EQ(ram, (4ull << 30) - (0x100000 - 0x9fc00));
    auto small = build_pc_e820(64ull << 20);
    EXPECT_EQ(small.back().addr, 0xfee00000u);
}

TEST(PcMachine, SerialIrqReachesCpuThroughPicAndLapic)
{
    Capture cap;
    MachineHarness m(64ull << 20, {&cap, nullptr, nullptr, nullptr});
    // PIC init as Linux does, vectors 0x30.
    for (auto [p, v] : std::initializer_list<std::pair<uint16_t, uint8_t>>{
             {0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01},
             {0xa0, 0x11}, {0xa1, 0x38}, {0xa1, 0x02}, {0xa1, 0x01},
             {0x21, 0x00}, {0xa1, 0x00}})
        m.outb(p, v);
    m.outb(0x3fc, 0x08); // OUT2
    m.outb(0x3f9, 0x02); // THRI
    EXPECT_TRUE(m.machine->interrupt_pending());
    EXPECT_EQ(m.machine->acknowledge_interrupt(), 0x34);
    m.outb(0x3f8, 'k');
    EXPECT_EQ(cap.out, "k");
}

TEST(PcMachine, FourComPortsOnTheirPortsAndIrqs)
{
    PcConfig cfg;
    cfg.ram_bytes = 64ull << 20;
    cfg.clock_mode = ClockMode::Manual;
    Capture caps[4];
    cfg.serial = {&caps[0], &caps[1], &caps[2], &caps[3]};
    cfg.serial_present = {true, true, true, true};
    auto created = PcMachine::create(cfg);
    ASSERT_TRUE(created.ok()) << created.error().message();
    PcMachine& m = *created.value();
    // PIC at vector 0x30, everything unmasked.
    for (auto [p, v] : std::initializer_list<std::pair<uint16_t, uint8_t>>{
             {0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0x00}})
        m.pio_write(p, 1, v);
    const uint16_t base[4] = {0x3f8, 0x2f8, 0x3e8, 0x2e8};
    const uint8_t vector[4] = {0x34, 0x33, 0x34, 0x33}; // COM1/3 on IRQ 4, COM2/4 on IRQ 3
    for (unsigned i = 0; i < 4; i++) {
        m.pio_write(base[i], 1, 'a' + i);
        EXPECT_EQ(caps[i].out, std::string(1, char('a' + i))) << "COM" << i + 1;
        m.pio_write(base[i] + 4, 1, 0x08); // OUT2
        m.pio_write(base[i] + 1, 1, 0x02); // THR empty interrupt
        EXPECT_TRUE(m.interrupt_pending()) << "COM" << i + 1;
        EXPECT_EQ(m.acknowledge_interrupt(), vector[i]) << "COM" << i + 1;
        EXPECT_EQ(m.pio_read(base[i] + 2, 1) & 0x0f, 0x02u); // IIR: THR empty, cleared by this read
        m.pio_write(base[i] + 1, 1, 0x00);
        m.pio_write(0x20, 1, 0x20); // EOI
        EXPECT_FALSE(m.interrupt_pending()) << "COM" << i + 1;
    }
}

TEST(PcMachine, PitThroughIoapicPin2)
{
    MachineHarness m;
    // Route IOAPIC pin 2 to vector 0x30; mask LINT0 so the PIC is out.
    m.writel(0xfee000f0, 0x1ff);
    m.writel(0xfee00350, 0x10700);
    m.writel(0xfec00000, 0x14);
    m.writel(0xfec00010, 0x30);
    m.outb(0x43, 0x34);
    m.outb(0x40, 0x9c);
    m.outb(0x40, 0x2e); // 11932: 100 Hz
    m.step_ns(10000000);
    EXPECT_TRUE(m.machine->interrupt_pending());
    EXPECT_EQ(m.machine->acknowledge_interrupt(), 0x30);
}

TEST(PcMachine, ResetSourcesPostResetEvent)
{
    MachineHarness m;
    EXPECT_EQ(m.machine->take_events(), 0u);
    m.outb(0x64, 0xfe);
    EXPECT_EQ(m.machine->take_events(), unsigned(MachineEvent::Reset));
    m.outb(0x92, 0x01);
    EXPECT_EQ(m.machine->take_events(), unsigned(MachineEvent::Reset));
    m.outb(0xcf9, 0x06);
    EXPECT_EQ(m.machine->take_events(), unsigned(MachineEvent::Reset));
    m.machine->pio_write(0x604, 2, (0 << 10) | (1 << 13));
    EXPECT_EQ(m.machine->take_events(), unsigned(MachineEvent::Shutdown));
}

TEST(PcMachine, CmosAndAcpiTablesInRam)
{
    MachineHarness m(128ull << 20);
    m.outb(0x70, 0x34);
    uint8_t lo = m.inb(0x71);
    m.outb(0x70, 0x35);
    uint8_t hi = m.inb(0x71);
    EXPECT_EQ(lo | (hi << 8), (112u << 20) >> 16);
    char sig[8];
    ASSERT_TRUE(m.machine->memory().read(m.machine->acpi_rsdp_gpa(), sig, 8).ok());
    EXPECT_EQ(std::string(sig, 8), "RSD PTR ");
}

TEST(PcMachine, HaltWakesOnTimerInManualClock)
{
    MachineHarness m;
    m.writel(0xfee000f0, 0x1ff);
    m.writel(0xfee00320, 0x45);
    m.writel(0xfee00380, 1000);
    EXPECT_TRUE(m.machine->wait_for_interrupt());
    EXPECT_EQ(m.machine->acknowledge_interrupt(), 0x45);
    // Nothing armed: a halt with interrupts that can never come ends the run.
    m.writel(0xfee000b0, 0);
    EXPECT_FALSE(m.machine->wait_for_interrupt());
}

TEST(PcMachine, InputFromTheLoopThreadIsSeenAndKicks)
{
    Capture cap;
    MachineHarness m(64ull << 20, {&cap, nullptr, nullptr, nullptr});
    int kicks = 0;
    m.machine->set_vcpu_kick([&] { kicks++; });
    for (auto [p, v] : std::initializer_list<std::pair<uint16_t, uint8_t>>{
             {0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0x00}})
        m.outb(p, v);
    m.outb(0x3fc, 0x08);
    m.outb(0x3f9, 0x01); // RDI
    EXPECT_FALSE(m.machine->interrupt_pending());
    kicks = 0;
    {
        MachineLock lk(*m.machine);
        const uint8_t x[] = {'x'};
        m.machine->serial(0)->receive(x);
        EXPECT_EQ(kicks, 0); // deferred until the lock is released
    }
    EXPECT_EQ(kicks, 1);
    EXPECT_TRUE(m.machine->interrupt_pending()); // the lock-free summary saw it
    EXPECT_EQ(m.machine->acknowledge_interrupt(), 0x34);
}

TEST(PcMachine, TooLittleRamIsRefused)
{
    PcConfig cfg;
    cfg.ram_bytes = 1ull << 20;
    auto r = PcMachine::create(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "ram size too small: the pc machine needs at least 2 MiB");
}

} // namespace
} // namespace kiln::hw::test
