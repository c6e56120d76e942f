// libFuzzer target: open arbitrary bytes as a qcow2 image (read-only) and
// read, map and check it. Any crash, hang, leak or sanitizer report is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "block/context.h"

using namespace kiln;
using namespace kiln::block;

namespace {

struct Harness {
    std::unique_ptr<EventLoop> loop = EventLoop::create().value();
    ThreadPool pool{*loop, 1};
    BlockContext ctx{*loop, pool};
};

Task<void> exercise(BlockContext& ctx, const std::string& path)
{
    ImageSpec spec;
    spec.filename = path;
    spec.format = "qcow2";
    spec.flags.read_write = false;
    spec.flags.no_backing = true;
    auto opened = co_await ctx.open_image(spec);
    if (!opened)
        co_return;
    auto& node = *opened.value();
    std::vector<uint8_t> buf(64 * 1024);
    uint64_t size = node.size_bytes();
    for (uint64_t off : {uint64_t(0), size / 2, size > buf.size() ? size - buf.size() : 0}) {
        uint64_t n = std::min<uint64_t>(buf.size(), size - std::min(off, size));
        if (n)
            (void)co_await node.preadv(off, QIov(buf.data(), n));
    }
    uint64_t pos = 0;
    for (int i = 0; i < 64 && pos < size; ++i) {
        auto st = co_await node.block_status(pos, size - pos);
        if (!st || st->bytes == 0)
            break;
        pos += st->bytes;
    }
    (void)node.snapshots();
    (void)co_await node.check(CheckFix::None);
    (void)co_await node.close();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static Harness h;
    int fd = memfd_create("fuzz-image", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == ssize_t(size)) {
        std::string path = "/proc/self/fd/" + std::to_string(fd);
        h.loop->run_until_complete(exercise(h.ctx, path));
    }
    close(fd);
    return 0;
}
