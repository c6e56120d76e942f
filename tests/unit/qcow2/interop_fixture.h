// Interop fixture: real files in a temp dir, Kiln's qcow2 driver through
// BlockContext, and Debian's qemu-img/qemu-io as the oracle (tests skip
// when they are not installed).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "tests/unit/block/block_fixture.h"

namespace kiln::block::test {

class Qcow2Interop : public BlockFixture {
protected:
    void SetUp() override
    {
        BlockFixture::SetUp();
        std::string out;
        if (sh("qemu-img --version", &out) != 0)
            GTEST_SKIP() << "qemu-img is not installed";
    }

    // Runs a shell command; returns its exit status, output in *out.
    static int sh(const std::string& cmd, std::string* out = nullptr)
    {
        FILE* p = popen((cmd + " 2>&1").c_str(), "r");
        if (!p)
            return -1;
        std::string text;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
            text.append(buf, n);
        int status = pclose(p);
        if (out)
            *out = text;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

    void kiln_create(const std::string& p, uint64_t size, const std::string& options)
    {
        auto opts = OptionList::parse(options).value();
        auto r = run(m_ctx->create_image("qcow2", p, size, opts));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }

    std::unique_ptr<BlockNode> kiln_open(const std::string& p, bool rw, const std::string& format = "qcow2")
    {
        ImageSpec spec;
        spec.filename = p;
        spec.format = format;
        spec.flags.read_write = rw;
        if (getenv("KILN_TEST_AIO"))
            spec.flags.aio = parse_aio_engine(getenv("KILN_TEST_AIO"));
        auto r = run(m_ctx->open_image(spec));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        return r.ok() ? std::move(r).value() : nullptr;
    }

    std::vector<uint8_t> kiln_read(BlockNode& n, uint64_t off, uint64_t len)
    {
        std::vector<uint8_t> buf(len);
        auto r = run(n.preadv(off, QIov(buf.data(), len)));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        return buf;
    }

    void kiln_write(BlockNode& n, uint64_t off, std::vector<uint8_t> data)
    {
        auto r = run(n.pwritev(off, QIov(data.data(), data.size()), RequestFlags::None));
        ASSERT_TRUE(r.ok()) << r.error().message();
    }

    void close(std::unique_ptr<BlockNode>& n)
    {
        if (n) {
            ASSERT_TRUE(run(n->close()).ok());
        }
        n.reset();
    }

    static std::vector<uint8_t> read_host(const std::string& p)
    {
        std::ifstream in(p, std::ios::binary);
        return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    static void write_host(const std::string& p, const std::vector<uint8_t>& data)
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    }

    // qemu-img check --output=json; exit status in *status.
    nlohmann::json qemu_check(const std::string& p, int* status)
    {
        std::string out;
        *status = sh("qemu-img check --output=json " + p, &out);
        auto start = out.find('{');
        if (start == std::string::npos)
            return nlohmann::json{{"raw", out}};
        return nlohmann::json::parse(out.substr(start), nullptr, false);
    }

    // Asserts qemu-img finds no corruption and no leak.
    void expect_qemu_clean(const std::string& p)
    {
        int status = 0;
        auto j = qemu_check(p, &status);
        EXPECT_EQ(status, 0) << p << ": " << j.dump();
        EXPECT_FALSE(j.contains("corruptions")) << j.dump();
        EXPECT_FALSE(j.contains("leaks")) << j.dump();
    }

    static std::vector<uint8_t> random_bytes(size_t len, uint32_t seed)
    {
        std::vector<uint8_t> v(len);
        std::mt19937 rng(seed);
        for (auto& b : v)
            b = uint8_t(rng());
        return v;
    }
};

} // namespace kiln::block::test
