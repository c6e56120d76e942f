// open_tool_image: probing is left to the block layer, so a file probed as
// raw gets the raw driver's block-0 protection (as qemu-img's images do)
// and an explicit "raw" does not.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tools/common/env.h"

using namespace kiln;
using namespace kiln::tools;

namespace {

class OpenToolImage : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/kiln-open-image-XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        m_dir = dir;
        m_path = m_dir + "/disk.img";
        std::ofstream(m_path, std::ios::binary) << std::string(65536, 'x');
        m_env = ToolEnv::create().value();
    }
    void TearDown() override
    {
        ::unlink(m_path.c_str());
        ::rmdir(m_dir.c_str());
    }

    OpenedImage open(const std::string& format)
    {
        ImageRequest req;
        req.filename = m_path;
        req.format = format;
        req.flags.read_write = true;
        req.warn_raw_probe = false;
        auto r = m_env->run(open_tool_image(m_env->ctx(), req));
        EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
        return r ? std::move(r).value() : OpenedImage{};
    }

    Result<void> write_magic(OpenedImage& image)
    {
        std::vector<uint8_t> block(512, 0);
        const uint8_t magic[] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
        std::copy(std::begin(magic), std::end(magic), block.begin());
        return m_env->run(image.node->pwritev(0, block::QIov(block.data(), block.size()), block::RequestFlags::None));
    }

    std::string m_dir, m_path;
    std::unique_ptr<ToolEnv> m_env;
};

} // namespace

TEST_F(OpenToolImage, ProbedRawRefusesAFormatHeaderAtBlockZero)
{
    OpenedImage image = open("");
    ASSERT_TRUE(image.node);
    EXPECT_EQ(image.format, "raw");
    auto r = write_magic(image);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errno_value(), EPERM);
    // Ordinary data at block 0 is fine.
    std::vector<uint8_t> text(512, 'y');
    EXPECT_TRUE(m_env->run(image.node->pwritev(0, block::QIov(text.data(), text.size()), block::RequestFlags::None))
                    .ok());
    EXPECT_TRUE(m_env->run(close_image(image)).ok());
}

TEST_F(OpenToolImage, ExplicitRawAllowsAnyBlockZero)
{
    OpenedImage image = open("raw");
    ASSERT_TRUE(image.node);
    EXPECT_TRUE(write_magic(image).ok());
    EXPECT_TRUE(m_env->run(close_image(image)).ok());
}
