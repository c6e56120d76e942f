// Shared fixture for disk device tests: an event loop, a thread pool, a
// BlockContext, guest RAM, a port/MMIO harness and helpers to make images
// in a temporary directory and open them as drives.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "block/context.h"
#include "hw/block/device_io.h"
#include "hw/block/drive.h"
#include "hw/core/guest_memory.h"
#include "tests/unit/hw/harness.h"

namespace kiln::hw::test {

class DiskFixture : public ::testing::Test, public BlockErrorHost {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/kiln-disk-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        loop = EventLoop::create().value();
        pool = std::make_unique<ThreadPool>(*loop, 2);
        ctx = std::make_unique<block::BlockContext>(*loop, *pool);
        memory = GuestMemory::create(k_ram_bytes, k_ram_bytes).value();
        io.loop = loop.get();
        io.memory = memory.get();
    }
    void TearDown() override
    {
        for (auto& d : drives)
            (void)loop->run_until_complete(d->close());
        drives.clear();
        ctx.reset();
        pool.reset();
        loop.reset();
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    void block_error_stop(const std::string& drive_id, IoDirection, bool, const std::string& reason) override
    {
        stops.push_back(drive_id + ": " + reason);
    }
    void block_error_passed(
        const std::string& drive_id, IoDirection dir, bool ignored, bool nospace, const std::string&) override
    {
        passed.push_back(drive_id + (dir == IoDirection::Read ? " read " : " write ") + (ignored ? "ignore" : "report")
            + (nospace ? " nospace" : ""));
    }

    std::string path(const std::string& name) const { return m_dir + "/" + name; }
    static uint8_t pattern(uint64_t i) { return uint8_t((i * 7 + i / 512) & 0xff); }

    // A raw image of `bytes` filled with pattern().
    std::string make_raw(const std::string& name, uint64_t bytes, bool fill = true)
    {
        std::string p = path(name);
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        if (fill) {
            std::vector<char> buf(bytes);
            for (uint64_t i = 0; i < bytes; i++)
                buf[i] = char(pattern(i));
            out.write(buf.data(), std::streamsize(bytes));
        }
        out.close();
        if (!fill)
            std::filesystem::resize_file(p, bytes);
        return p;
    }

    Drive* open_drive(const DriveConfig& cfg)
    {
        auto r = loop->run_until_complete(Drive::open(*ctx, cfg));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        if (!r.ok())
            return nullptr;
        drives.push_back(std::move(r).value());
        drives.back()->set_error_host(this);
        return drives.back().get();
    }
    Drive* add_drive(std::unique_ptr<Drive> d)
    {
        drives.push_back(std::move(d));
        drives.back()->set_error_host(this);
        return drives.back().get();
    }

    // Runs the loop until pred() holds; bounded by iterations, not time.
    template<typename Pred> bool run_until(Pred pred, int max_iterations = 3000)
    {
        for (int i = 0; i < max_iterations && !pred(); i++)
            loop->run_once(2);
        return pred();
    }
    void run_idle(int iterations = 50)
    {
        for (int i = 0; i < iterations; i++)
            loop->run_once(1);
    }

    static constexpr uint64_t k_ram_bytes = 16ull << 20;
    std::string m_dir;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<block::BlockContext> ctx;
    std::unique_ptr<GuestMemory> memory;
    DeviceIoContext io;
    DeviceHarness bus;
    std::vector<std::unique_ptr<Drive>> drives;
    std::vector<std::string> stops;
    std::vector<std::string> passed; // BLOCK_IO_ERROR for report/ignore
};

} // namespace kiln::hw::test
