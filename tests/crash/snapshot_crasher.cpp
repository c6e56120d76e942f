// snapshot_crasher: a deterministic sequence of operations on a qcow2
// image (guest writes, snapshot create, apply and delete), printing
// "done N" once operation N is complete and flushed. The crash test kills
// it with SIGKILL at random moments, repairs what the dirty bit says may
// need it, then runs `verify N`: it replays the same sequence in memory
// and requires every snapshot the image lists to read back exactly as it
// was taken, every snapshot finished by operation N and not deleted by
// then to be listed, and none deleted by operation N to be.
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "block/context.h"

using namespace kiln;
using namespace kiln::block;

namespace {

enum class OpKind { Write, Create, Apply, Delete };

struct Op {
    OpKind kind;
    std::string name;     // snapshot
    uint64_t offset = 0;  // write
    uint32_t length = 0;  // write
    uint32_t seed = 0;    // write
};

std::vector<uint8_t> write_data(const Op& op)
{
    std::vector<uint8_t> d(op.length);
    std::mt19937 rng(op.seed);
    for (auto& b : d)
        b = uint8_t(rng());
    return d;
}

// The sequence and, replayed in memory, the content of every snapshot.
struct Model {
    std::vector<Op> ops;
    std::vector<uint8_t> active;
    std::map<std::string, std::vector<uint8_t>> snapshots;
    // Snapshot name -> op index that created / deleted it.
    std::map<std::string, size_t> created_at, deleted_at;

    Model(uint64_t size, uint32_t seed, size_t count) : active(size, 0)
    {
        std::mt19937_64 rng(seed);
        std::vector<std::string> alive;
        int next = 1;
        for (size_t i = 0; i < count; ++i) {
            Op op;
            uint64_t pick = rng() % 10;
            if (pick < 5 || alive.empty()) {
                if (pick < 3) {
                    op.kind = OpKind::Write;
                    op.length = uint32_t(1 + rng() % 200000);
                    op.offset = rng() % (size - op.length);
                    op.seed = uint32_t(rng());
                } else {
                    op.kind = OpKind::Create;
                    op.name = "s" + std::to_string(next++);
                    alive.push_back(op.name);
                }
            } else {
                op.kind = pick < 7 ? OpKind::Apply : OpKind::Delete;
                size_t k = rng() % alive.size();
                op.name = alive[k];
                if (op.kind == OpKind::Delete)
                    alive.erase(alive.begin() + long(k));
            }
            apply(op, i);
            ops.push_back(op);
        }
    }

    void apply(const Op& op, size_t index)
    {
        switch (op.kind) {
        case OpKind::Write: {
            auto d = write_data(op);
            std::copy(d.begin(), d.end(), active.begin() + long(op.offset));
            break;
        }
        case OpKind::Create:
            snapshots[op.name] = active;
            created_at[op.name] = index;
            break;
        case OpKind::Apply:
            active = snapshots[op.name];
            break;
        case OpKind::Delete:
            deleted_at[op.name] = index;
            break;
        }
    }
};

Task<Result<void>> run_ops(BlockNode& node, const Model& m)
{
    for (size_t i = 0; i < m.ops.size(); ++i) {
        const Op& op = m.ops[i];
        switch (op.kind) {
        case OpKind::Write: {
            auto d = write_data(op);
            CO_TRY(co_await node.pwritev(op.offset, QIov(d.data(), d.size()), RequestFlags::None));
            break;
        }
        case OpKind::Create: {
            SnapshotInfo sn;
            sn.name = op.name;
            CO_TRY(co_await node.snapshot_create(sn));
            break;
        }
        case OpKind::Apply:
            CO_TRY(co_await node.snapshot_goto(op.name));
            break;
        case OpKind::Delete:
            CO_TRY(co_await node.snapshot_delete("", op.name));
            break;
        }
        CO_TRY(co_await node.flush());
        std::printf("done %zu\n", i + 1);
        std::fflush(stdout);
    }
    co_return ok();
}

Task<Result<std::unique_ptr<BlockNode>>> open(BlockContext& ctx, const std::string& image, bool rw)
{
    ImageSpec spec;
    spec.filename = image;
    spec.format = "qcow2";
    spec.flags.read_write = rw;
    co_return co_await ctx.open_image(spec);
}

Task<Result<void>> verify(BlockContext& ctx, const std::string& image, const Model& m, size_t done)
{
    std::vector<std::string> listed;
    {
        auto node = CO_TRY(co_await open(ctx, image, false));
        for (auto& sn : node->snapshots())
            listed.push_back(sn.name);
        CO_TRY(co_await node->close());
    }
    for (auto& [name, at] : m.created_at) {
        bool is_listed = std::find(listed.begin(), listed.end(), name) != listed.end();
        auto del = m.deleted_at.find(name);
        bool must = at < done && (del == m.deleted_at.end() || del->second >= done + 1);
        bool must_not = at > done || (del != m.deleted_at.end() && del->second < done);
        if (must && !is_listed)
            co_return Error::corrupt("snapshot " + name + " (finished by op " + std::to_string(at + 1) + ") is gone");
        if (must_not && is_listed)
            co_return Error::corrupt("snapshot " + name + " is listed but should not be");
    }
    for (const std::string& name : listed) {
        auto it = m.snapshots.find(name);
        if (it == m.snapshots.end())
            co_return Error::corrupt("unknown snapshot " + name);
        auto node = CO_TRY(co_await open(ctx, image, false));
        CO_TRY(co_await node->snapshot_load_tmp("", name));
        std::vector<uint8_t> buf(it->second.size());
        CO_TRY(co_await node->preadv(0, QIov(buf.data(), buf.size())));
        CO_TRY(co_await node->close());
        if (buf != it->second)
            co_return Error::corrupt("snapshot " + name + " does not read back as taken");
    }
    co_return ok();
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 5) {
        std::fprintf(stderr, "usage: snapshot_crasher run|verify IMAGE SEED COUNT [DONE]\n");
        return 2;
    }
    std::string mode = argv[1], image = argv[2];
    uint32_t seed = uint32_t(std::stoul(argv[3]));
    size_t count = std::stoul(argv[4]);
    auto loop = EventLoop::create().value();
    ThreadPool pool(*loop);
    BlockContext ctx(*loop, pool);
    auto run = [&]() -> Task<Result<void>> {
        uint64_t size = 0;
        {
            auto node = CO_TRY(co_await open(ctx, image, false));
            size = node->size_bytes();
            CO_TRY(co_await node->close());
        }
        Model model(size, seed, count);
        if (mode == "verify")
            co_return co_await verify(ctx, image, model, argc > 5 ? std::stoul(argv[5]) : 0);
        auto node = CO_TRY(co_await open(ctx, image, true));
        auto r = co_await run_ops(*node, model);
        auto closed = co_await node->close();
        CO_TRY(std::move(r));
        co_return closed;
    };
    auto result = loop->run_until_complete(run());
    if (!result) {
        std::fprintf(stderr, "snapshot_crasher: %s\n", result.error().message().c_str());
        return 1;
    }
    return 0;
}
