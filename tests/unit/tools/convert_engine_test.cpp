// ConvertEngine on raw files: content is copied exactly, zero runs are
// skipped on a zero-initialised target (it stays sparse), -S 0 allocates
// everything, and several sources are concatenated.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "block/qiov.h"
#include "tools/common/env.h"
#include "tools/img/convert.h"

using namespace kiln;
using namespace kiln::tools;

namespace {

constexpr uint64_t k_mib = 1 << 20;

class ConvertEngineTest : public testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/kiln-convert-test-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        m_env = ToolEnv::create().value();
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::unique_ptr<block::BlockNode> make_raw(const std::string& name, uint64_t size)
    {
        std::string path = m_dir + "/" + name;
        auto created = m_env->run(m_env->ctx().create_image("raw", path, size, OptionList()));
        EXPECT_TRUE(created.ok()) << created.error().message();
        block::ImageSpec spec;
        spec.filename = path;
        spec.format = "raw";
        spec.flags.read_write = true;
        auto node = m_env->run(m_env->ctx().open_image(spec));
        EXPECT_TRUE(node.ok()) << node.error().message();
        return std::move(node).value();
    }

    void write(block::BlockNode& node, uint64_t offset, std::vector<uint8_t> data)
    {
        auto r = m_env->run(node.pwritev(offset, block::QIov(data.data(), data.size()), block::RequestFlags::None));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }

    std::vector<uint8_t> read_all(block::BlockNode& node)
    {
        std::vector<uint8_t> buf(node.size_bytes());
        auto r = m_env->run(node.preadv(0, block::QIov(buf.data(), buf.size())));
        EXPECT_TRUE(r.ok());
        return buf;
    }

    // 8 MiB: random data in [0,1M), explicit zeroes in [1M,2M), a hole,
    // 4 KiB of data at 5M, a hole to the end.
    std::unique_ptr<block::BlockNode> make_source(const std::string& name)
    {
        auto src = make_raw(name, 8 * k_mib);
        std::mt19937 rng(42);
        std::vector<uint8_t> data(k_mib);
        for (auto& b : data)
            b = uint8_t(rng());
        write(*src, 0, data);
        write(*src, k_mib, std::vector<uint8_t>(k_mib, 0));
        write(*src, 5 * k_mib, std::vector<uint8_t>(4096, 0x5a));
        return src;
    }

    Result<void> convert(std::vector<block::BlockNode*> sources, block::BlockNode& target, ConvertSettings settings)
    {
        Progress progress(false);
        ConvertEngine engine(m_env->loop(), std::move(sources), target, settings, progress);
        return m_env->run(engine.run());
    }

    std::string m_dir;
    std::unique_ptr<ToolEnv> m_env;
};

TEST_F(ConvertEngineTest, CopiesContentAndKeepsZeroRunsSparse)
{
    auto src = make_source("src.raw");
    auto dst = make_raw("dst.raw", 8 * k_mib);
    ASSERT_TRUE(convert({src.get()}, *dst, ConvertSettings{}).ok());
    EXPECT_EQ(read_all(*dst), read_all(*src));
    // The explicit zeroes in [1M,2M) were detected and not written.
    auto st = m_env->run(dst->block_status(k_mib, k_mib));
    ASSERT_TRUE(st.ok());
    EXPECT_TRUE(st->flags & block::BlockStatus::Zero);
    EXPECT_FALSE(st->flags & block::BlockStatus::Data);
    EXPECT_LT(dst->allocated_size().value(), 2 * k_mib);
}

TEST_F(ConvertEngineTest, SparseZeroDisablesDetection)
{
    auto src = make_source("src.raw");
    auto dst = make_raw("dst.raw", 8 * k_mib);
    ConvertSettings settings;
    settings.min_sparse_bytes = 0;
    ASSERT_TRUE(convert({src.get()}, *dst, settings).ok());
    EXPECT_EQ(read_all(*dst), read_all(*src));
    EXPECT_GE(dst->allocated_size().value(), 8 * k_mib);
}

TEST_F(ConvertEngineTest, OutOfOrderManyCoroutines)
{
    auto src = make_source("src.raw");
    auto dst = make_raw("dst.raw", 8 * k_mib);
    ConvertSettings settings;
    settings.coroutines = 16;
    settings.out_of_order = true;
    settings.buf_bytes = 64 * 1024; // many chunks in flight
    ASSERT_TRUE(convert({src.get()}, *dst, settings).ok());
    EXPECT_EQ(read_all(*dst), read_all(*src));
}

TEST_F(ConvertEngineTest, ConcatenatesSources)
{
    auto a = make_source("a.raw");
    auto b = make_raw("b.raw", 2 * k_mib);
    write(*b, 4096, std::vector<uint8_t>(8192, 0x77));
    auto dst = make_raw("dst.raw", 10 * k_mib);
    ASSERT_TRUE(convert({a.get(), b.get()}, *dst, ConvertSettings{}).ok());
    auto got = read_all(*dst);
    auto want = read_all(*a);
    auto tail = read_all(*b);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(got, want);
}

TEST_F(ConvertEngineTest, TargetNotZeroInitGetsZeroesWritten)
{
    auto src = make_source("src.raw");
    auto dst = make_raw("dst.raw", 8 * k_mib);
    write(*dst, 0, std::vector<uint8_t>(8 * k_mib, 0xee)); // stale content
    ConvertSettings settings;
    settings.target_zero_init = false;
    ASSERT_TRUE(convert({src.get()}, *dst, settings).ok());
    EXPECT_EQ(read_all(*dst), read_all(*src));
}

} // namespace
