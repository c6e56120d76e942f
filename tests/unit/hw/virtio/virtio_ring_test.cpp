// Hostile virtqueues: each broken ring must end in DEVICE_NEEDS_RESET on
// that device, a stopped queue, no completion, no crash, and a device that
// works again after the driver resets it.
#include <fstream>
#include <functional>

#include "util/log.h"

#include "tests/unit/hw/virtio/virtio_fixture.h"

namespace kiln::hw::test {
namespace {

using namespace virtio;
using B = VirtioBlk;

struct HostileCase {
    const char* name;
    std::function<void(VirtioFixture&)> build;
};

class VirtioRingTest : public VirtioFixture, public ::testing::WithParamInterface<int> {
protected:
    void header(uint64_t at, uint32_t type = B::k_t_in)
    {
        ASSERT_TRUE(memory->write_value<uint32_t>(at, type).ok());
        ASSERT_TRUE(memory->write_value<uint64_t>(at + 8, 0).ok());
    }
    void start(uint64_t features)
    {
        make_device(raw_disk(1 << 20));
        init_modern(features);
    }
    void kick_expect_reset()
    {
        kick();
        expect_needs_reset_then_recover();
    }
    void expect_needs_reset_then_recover()
    {
        run_idle(20);
        EXPECT_TRUE(status() & k_status_needs_reset);
        EXPECT_EQ(used_idx(), 0);
        EXPECT_TRUE(pci->queue(0).broken);
        // The config-change interrupt tells the driver.
        EXPECT_EQ(pci->isr() & 2, 2);
        // Further kicks do nothing.
        kick();
        run_idle(5);
        EXPECT_EQ(used_idx(), 0);
        // A reset brings the device back.
        init_modern(k_f_version_1 | k_f_indirect_desc | k_f_event_idx);
        EXPECT_FALSE(status() & k_status_needs_reset);
        uint64_t st = request(B::k_t_in, 0, k_bufs, 512, true, 0x58000);
        kick();
        wait_used(1);
        EXPECT_EQ(byte_at(st), B::k_s_ok);
    }
};

TEST_F(VirtioRingTest, DescriptorLoop)
{
    start(k_f_version_1);
    header(0x50000);
    put_desc(k_desc, 0, 0x50000, 16, 1, 1);
    put_desc(k_desc, 1, 0x50010, 1, 1 | 2, 0); // points back to 0
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, BrokenRingIsLoggedOnceUnderGuestErrors)
{
    // -d guest_errors: one line that names the device and the fault, however
    // often the guest kicks the broken queue afterwards.
    std::string log_path = path("guest.log");
    ASSERT_TRUE(Log::enable_categories("guest_errors"));
    ASSERT_TRUE(Log::set_file(log_path));
    start(k_f_version_1);
    header(0x50000);
    put_desc(k_desc, 0, 0x50000, 16, 1, 1);
    put_desc(k_desc, 1, 0x50010, 1, 1 | 2, 0);
    publish(0);
    for (int i = 0; i < 5; i++) {
        kick();
        run_idle(5);
    }
    EXPECT_TRUE(status() & k_status_needs_reset);
    ASSERT_TRUE(Log::set_file(""));
    std::ifstream in(log_path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("virtio-blk-pci: queue 0: "), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("device needs reset"), std::string::npos) << lines[0];
}

TEST_F(VirtioRingTest, IndirectLoop)
{
    start(k_f_version_1 | k_f_indirect_desc);
    header(0x50000);
    put_desc(0x60000, 0, 0x50000, 16, 1, 1);
    put_desc(0x60000, 1, 0x50010, 1, 1 | 2, 1); // points to itself
    put_desc(k_desc, 0, 0x60000, 32, 4, 0);
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, DescriptorOutsideRam)
{
    start(k_f_version_1);
    header(0x50000);
    add_chain({ { 0x50000, 16, false }, { 0xfff00000u, 4096, true }, { 0x50010, 1, true } });
    kick_expect_reset();
}

TEST_F(VirtioRingTest, LengthThatWrapsTheAddressSpace)
{
    start(k_f_version_1);
    header(0x50000);
    add_chain({ { 0x50000, 16, false }, { 0xffffffffffff0000ull, 0x20000, true }, { 0x50010, 1, true } });
    kick_expect_reset();
}

TEST_F(VirtioRingTest, IndirectTableOfAbsurdLength)
{
    start(k_f_version_1 | k_f_indirect_desc);
    put_desc(k_desc, 0, 0x60000, 0xfffffff0u, 4, 0);
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, IndirectTableLengthNotMultipleOf16)
{
    start(k_f_version_1 | k_f_indirect_desc);
    put_desc(k_desc, 0, 0x60000, 17, 4, 0);
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, NestedIndirectTable)
{
    start(k_f_version_1 | k_f_indirect_desc);
    put_desc(0x60000, 0, 0x61000, 16, 4, 0);
    put_desc(k_desc, 0, 0x60000, 16, 4, 0);
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, IndirectWithoutTheFeature)
{
    start(k_f_version_1);
    header(0x50000);
    add_chain({ { 0x50000, 16, false }, { 0x50010, 1, true } }, 0x60000);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, AvailIndexJumpsPastQueueSize)
{
    start(k_f_version_1);
    ASSERT_TRUE(memory->write_value<uint16_t>(k_avail + 2, 40000).ok());
    kick_expect_reset();
}

TEST_F(VirtioRingTest, HeadOutsideTable)
{
    start(k_f_version_1);
    publish(k_qsize + 3);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, NextOutsideTable)
{
    start(k_f_version_1);
    header(0x50000);
    put_desc(k_desc, 0, 0x50000, 16, 1, 200);
    publish(0);
    kick_expect_reset();
}

TEST_F(VirtioRingTest, MissingStatusByte)
{
    start(k_f_version_1);
    header(0x50000);
    add_chain({ { 0x50000, 16, false } });
    kick_expect_reset();
}

TEST_F(VirtioRingTest, ReadableAfterWritable)
{
    start(k_f_version_1);
    header(0x50000);
    add_chain({ { 0x50000, 16, false }, { 0x50010, 1, true }, { 0x50020, 16, false } });
    kick_expect_reset();
}

TEST_F(VirtioRingTest, RingsOutsideRam)
{
    start(k_f_version_1);
    // Re-point the queue at addresses past RAM by resetting and setting it up by hand.
    status(0);
    status(k_status_acknowledge | k_status_driver);
    common32(0x0c, 0);
    common32(0x08, 1);
    common32(0x0c, 1);
    status(k_status_acknowledge | k_status_driver | k_status_features_ok);
    common16(0x16, 0);
    common32(0x28, 0xf0000000u);
    common32(0x2c, 0);
    common16(0x1c, 1);
    status(k_status_acknowledge | k_status_driver | k_status_features_ok | k_status_driver_ok);
    kick();
    run_idle(5);
    EXPECT_TRUE(status() & k_status_needs_reset);
    // A queue size that is not a power of two is refused at enable time.
    status(0);
    common16(0x16, 0);
    common16(0x18, 12);
    common16(0x1c, 1);
    EXPECT_EQ(common16(0x1c), 0);
    EXPECT_TRUE(status() & k_status_needs_reset);
}

TEST_F(VirtioRingTest, RefillingGuestCannotPinTheVcpu)
{
    start(k_f_version_1);
    // Each kick handles at most one ring's worth: 16 here.
    for (unsigned i = 0; i < 5; i++)
        request(B::k_t_in, 0, k_bufs, 512, true, 0x50000 + 0x100 * i);
    kick();
    EXPECT_EQ(blk->in_flight(), 5u);
    wait_used(5);
    // Notify for a queue that does not exist is ignored.
    kick(7);
    run_idle(2);
    EXPECT_FALSE(status() & k_status_needs_reset);
}

} // namespace
} // namespace kiln::hw::test
