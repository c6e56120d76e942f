#include "hw/char/uart_16550.h"

#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {
namespace {

struct Capture final : SerialHost {
    void transmit(uint8_t b) override { out.push_back(char(b)); }
    std::string out;
};

struct UartFixture : ::testing::Test {
    UartFixture() { h.map_pio(0x3f8, 8, uart); }
    void init()
    {
        h.outb(0x3fb, 0x80); // DLAB
        h.outb(0x3f8, 1);    // 115200
        h.outb(0x3f9, 0);
        h.outb(0x3fb, 0x03); // 8N1
        h.outb(0x3fc, 0x0b); // DTR RTS OUT2
    }
    DeviceHarness h;
    Capture host;
    Uart16550 uart{0, h.clock, h.irq[4], &host};
};

TEST_F(UartFixture, TransmitsAndReportsThrEmpty)
{
    init();
    for (char c : std::string("hi\n"))
        h.outb(0x3f8, uint8_t(c));
    EXPECT_EQ(host.out, "hi\n");
    EXPECT_EQ(h.inb(0x3fd) & 0x60, 0x60);
}

TEST_F(UartFixture, DivisorLatchReadsBack)
{
    h.outb(0x3fb, 0x80);
    h.outb(0x3f8, 0x0c);
    h.outb(0x3f9, 0x00);
    EXPECT_EQ(h.inb(0x3f8), 0x0c);
    h.outb(0x3fb, 0x03);
    EXPECT_EQ(h.inb(0x3fb), 0x03);
}

TEST_F(UartFixture, ThrEmptyInterruptOnEnableClearedByIirRead)
{
    init();
    h.outb(0x3f9, 0x02); // THRI
    EXPECT_TRUE(h.irq[4].level());
    EXPECT_EQ(h.inb(0x3fa) & 0x0f, 0x02);
    EXPECT_FALSE(h.irq[4].level());
    EXPECT_EQ(h.inb(0x3fa) & 0x0f, 0x01);
    h.outb(0x3f8, 'x');
    EXPECT_TRUE(h.irq[4].level());
}

TEST_F(UartFixture, Out2GatesTheIrq)
{
    init();
    h.outb(0x3fc, 0x03); // OUT2 off
    h.outb(0x3f9, 0x02);
    EXPECT_FALSE(h.irq[4].level());
    EXPECT_EQ(h.inb(0x3fa) & 0x0f, 0x02); // pending internally
}

TEST_F(UartFixture, ReceiveFifoTriggerAndTimeout)
{
    init();
    h.outb(0x3fa, 0x87); // FIFO on, clear, trigger 8
    h.outb(0x3f9, 0x01); // RDI
    EXPECT_EQ(h.inb(0x3fa) & 0xc0, 0xc0);
    uint8_t bytes[] = {'a', 'b', 'c'};
    EXPECT_EQ(uart.receive(bytes), 3u);
    EXPECT_FALSE(h.irq[4].level()); // below trigger
    h.step_ns(4 * 86806 + 1000);    // 4 character times at 115200
    EXPECT_TRUE(h.irq[4].level());
    EXPECT_EQ(h.inb(0x3fa) & 0x0f, 0x0c); // character timeout
    EXPECT_EQ(h.inb(0x3f8), 'a');
    EXPECT_EQ(h.inb(0x3f8), 'b');
    EXPECT_EQ(h.inb(0x3f8), 'c');
    EXPECT_FALSE(h.inb(0x3fd) & 0x01);
    EXPECT_FALSE(h.irq[4].level());
    uint8_t many[20] = {};
    EXPECT_EQ(uart.receive(many), 16u); // FIFO depth
    EXPECT_TRUE(h.irq[4].level());
    EXPECT_EQ(h.inb(0x3fa) & 0x0f, 0x04);
}

TEST_F(UartFixture, OverrunWithoutFifo)
{
    init();
    uint8_t one[] = {'1'};
    EXPECT_EQ(uart.receive(one), 1u);
    EXPECT_EQ(uart.can_receive(), 0u);
    EXPECT_EQ(h.inb(0x3fd) & 0x01, 0x01);
    EXPECT_EQ(h.inb(0x3f8), '1');
}

TEST_F(UartFixture, LoopbackEchoesTransmit)
{
    init();
    h.outb(0x3fc, 0x1b);
    h.outb(0x3f8, 0x5a);
    EXPECT_EQ(host.out, "");
    EXPECT_EQ(h.inb(0x3fd) & 0x01, 0x01);
    EXPECT_EQ(h.inb(0x3f8), 0x5a);
    EXPECT_EQ(h.inb(0x3fe) & 0xf0, 0xb0); // DTR/RTS/OUT2 looped to DSR/CTS/DCD
}

TEST_F(UartFixture, ScratchAndStateRoundTrip)
{
    init();
    h.outb(0x3ff, 0x42);
    h.outb(0x3fa, 0x01);
    uint8_t b[] = {'q', 'r'};
    uart.receive(b);
    IrqLine irq;
    Uart16550 copy(0, h.clock, irq, nullptr);
    state_round_trip(uart, copy);
    EXPECT_EQ(copy.read(7, 1), 0x42u);
    EXPECT_EQ(copy.read(0, 1), uint64_t('q'));
}

} // namespace
} // namespace kiln::hw::test
