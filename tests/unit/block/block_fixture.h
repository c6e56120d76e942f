// Shared fixture for block-layer unit tests: a temp dir under /tmp, an
// event loop, a thread pool and a BlockContext.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "block/context.h"

namespace kiln::block::test {

class BlockFixture : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/kiln-block-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        m_loop = EventLoop::create().value();
        m_pool = std::make_unique<ThreadPool>(*m_loop, 4);
        m_ctx = std::make_unique<BlockContext>(*m_loop, *m_pool);
    }
    void TearDown() override
    {
        m_ctx.reset();
        m_pool.reset();
        m_loop.reset();
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    template<typename T> T run(Task<T> task) { return m_loop->run_until_complete(std::move(task)); }

    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    // Writes `bytes` of a byte pattern (or a given byte) to a new file.
    void make_file(const std::string& p, uint64_t bytes, int byte = -1)
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        for (uint64_t i = 0; i < bytes; ++i)
            out.put(char(byte >= 0 ? byte : pattern(i)));
    }
    static uint8_t pattern(uint64_t i) { return uint8_t((i * 7 + i / 4096) & 0xff); }

    static uint64_t st_blocks_bytes(const std::string& p)
    {
        struct stat st { };
        stat(p.c_str(), &st);
        return uint64_t(st.st_blocks) * 512;
    }

    std::unique_ptr<BlockNode> open_file(const std::string& p, OpenFlags flags, OptionList options = {})
    {
        auto r = run(m_ctx->open_file(p, options, flags));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        return r.ok() ? std::move(r).value() : nullptr;
    }

    static OpenFlags rw_flags(CacheMode cache = CacheMode::Writeback, std::optional<AioEngine> aio = std::nullopt)
    {
        OpenFlags f;
        f.read_write = true;
        f.cache = cache;
        f.aio = aio;
        return f;
    }

    std::string m_dir;
    std::unique_ptr<EventLoop> m_loop;
    std::unique_ptr<ThreadPool> m_pool;
    std::unique_ptr<BlockContext> m_ctx;
};

} // namespace kiln::block::test
