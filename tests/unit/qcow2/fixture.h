// Shared setup for qcow2 unit tests: an event loop, a BlockContext and
// helpers to format/open qcow2 images on in-memory nodes.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "block/context.h"
#include "block/qcow2/create.h"
#include "block/qcow2/qcow2_node.h"
#include "tests/unit/qcow2/mem_node.h"
#include "util/event_loop.h"
#include "util/thread_pool.h"

namespace kiln::block::test {

class Qcow2Env {
public:
    Qcow2Env() : loop(EventLoop::create().value()), pool(*loop, 1), ctx(*loop, pool) {}

    template<typename T>
    T run(Task<T> task)
    {
        return loop->run_until_complete(std::move(task));
    }

    // Formats a fresh in-memory image; `mem` receives the protocol node.
    std::unique_ptr<BlockNode> create(const std::string& options, MemNode** mem = nullptr)
    {
        auto file = std::make_unique<MemNode>(ctx);
        if (mem)
            *mem = file.get();
        auto opts = OptionList::parse(options).value();
        auto r = run(qcow2::format_node(ctx, std::move(file), "/mem/image.qcow2", opts));
        if (!r) {
            ADD_FAILURE() << r.error().message();
            return nullptr;
        }
        return std::move(r).value();
    }

    Result<std::unique_ptr<BlockNode>> open(std::vector<uint8_t> bytes, bool read_write, MemNode** mem = nullptr,
                                            const std::string& options = "")
    {
        auto file = std::make_unique<MemNode>(ctx, std::move(bytes), read_write);
        if (mem)
            *mem = file.get();
        ImageSpec spec;
        spec.filename = "/mem/image.qcow2";
        spec.format = "qcow2";
        spec.options = OptionList::parse(options).value();
        spec.flags.read_write = read_write;
        return run(qcow2::Qcow2Node::open(ctx, std::move(file), spec));
    }

    Result<void> write(BlockNode& n, uint64_t off, std::vector<uint8_t>& buf)
    {
        return run(n.pwritev(off, QIov(buf.data(), buf.size()), RequestFlags::None));
    }
    std::vector<uint8_t> read(BlockNode& n, uint64_t off, size_t len)
    {
        std::vector<uint8_t> buf(len, 0xcc);
        auto r = run(n.preadv(off, QIov(buf.data(), len)));
        EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
        return buf;
    }
    CheckResult check(BlockNode& n, CheckFix fix = CheckFix::None)
    {
        auto r = run(n.check(fix));
        EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
        return r ? r.value() : CheckResult{};
    }

    std::unique_ptr<EventLoop> loop;
    ThreadPool pool;
    BlockContext ctx;
};

inline std::vector<uint8_t> pattern(size_t len, uint32_t seed)
{
    std::vector<uint8_t> v(len);
    std::mt19937 rng(seed);
    for (auto& b : v)
        b = uint8_t(rng() | 1);
    return v;
}

inline std::string check_summary(const CheckResult& r)
{
    std::string s = "corruptions=" + std::to_string(r.corruptions) + " leaks=" + std::to_string(r.leaks)
                    + " check_errors=" + std::to_string(r.check_errors);
    for (auto& m : r.messages)
        s += "\n  " + m;
    return s;
}

} // namespace kiln::block::test
