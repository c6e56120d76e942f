// kiln-img map [--object objectdef] [--image-opts] [-f fmt]
// [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename
#include <cinttypes>
#include <cstdio>

#include "tools/common/cli.h"
#include "tools/img/commands.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

struct MapEntry {
    uint64_t start = 0;
    uint64_t length = 0;
    bool data = false;
    bool zero = false;
    bool present = false;
    int depth = 0;
    bool has_offset = false;
    uint64_t offset = 0;
    std::string filename; // empty: none
};

bool mergeable(const MapEntry& a, const MapEntry& b)
{
    if (a.length == 0)
        return false;
    if (a.zero != b.zero || a.data != b.data || a.depth != b.depth || a.present != b.present
        || a.has_offset != b.has_offset || a.filename != b.filename)
        return false;
    if (a.has_offset && a.offset + a.length != b.offset)
        return false;
    return true;
}

// Walks down the chain until a layer decides the content (qemu-img's
// get_block_status): depth counts the layers passed.
Task<Result<MapEntry>> block_status_entry(block::BlockNode& top, uint64_t offset, uint64_t bytes)
{
    int depth = 0;
    block::BlockNode* node = &top;
    block::BlockStatus st;
    for (;;) {
        if (offset >= node->size_bytes()) {
            st = {};
            st.flags = block::BlockStatus::Zero;
            st.bytes = bytes;
            break;
        }
        st = CO_TRY(co_await node->block_status(offset, std::min(bytes, node->size_bytes() - offset)));
        if (st.bytes == 0)
            co_return Error::internal("block status returned an empty run at offset " + std::to_string(offset));
        bytes = std::min(bytes, st.bytes);
        if (st.flags & (block::BlockStatus::Data | block::BlockStatus::Zero))
            break;
        // Unallocated with nothing below, or past the end of a shorter
        // backing file: zeroes decided at this layer (QEMU's generic rule).
        if (!node->backing() || offset >= node->backing()->size_bytes()) {
            st.flags |= block::BlockStatus::Zero;
            break;
        }
        node = node->backing();
        ++depth;
    }
    MapEntry e;
    e.start = offset;
    e.length = std::min(bytes, st.bytes);
    e.data = st.flags & block::BlockStatus::Data;
    e.zero = st.flags & block::BlockStatus::Zero;
    e.present = st.flags & block::BlockStatus::Allocated;
    e.depth = depth;
    e.has_offset = (st.flags & block::BlockStatus::OffsetValid) != 0;
    e.offset = st.host_offset;
    if (e.has_offset && st.host_node)
        e.filename = st.host_node->filename();
    co_return e;
}

// Returns false on the human format's refusal of unmapped data.
bool dump_entry(OutputFormat fmt, const MapEntry& e, MapEntry* next)
{
    if (fmt == OutputFormat::Human) {
        if (e.data && !e.has_offset) {
            report_error("File contains external, encrypted or compressed clusters.");
            return false;
        }
        if (e.data && !e.zero)
            std::printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e.start, e.length,
                        e.has_offset ? e.offset : 0, e.filename.c_str());
        // The human form does not tell zero from unallocated: fold them so
        // neighbours coalesce.
        if (next && (!next->data || next->zero)) {
            next->data = false;
            next->zero = true;
        }
        return true;
    }
    std::printf("{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, \"present\": %s, \"zero\": %s, "
                "\"data\": %s",
                e.start, e.length, e.depth, e.present ? "true" : "false", e.zero ? "true" : "false",
                e.data ? "true" : "false");
    if (e.has_offset)
        std::printf(", \"offset\": %" PRIu64, e.offset);
    std::putchar('}');
    if (next)
        std::puts(",");
    return true;
}

struct MapArgs {
    CommonOptions common;
    std::string filename;
    uint64_t start = 0;
    std::optional<uint64_t> max_length;
};

Task<int> do_map(ToolEnv& env, MapArgs args)
{
    auto image = co_await open_or_report(env, request_from(args.common, args.filename));
    if (!image)
        co_return 1;
    block::BlockNode& node = *image->node;
    uint64_t length = node.size_bytes();
    if (args.max_length)
        length = std::min(args.start + *args.max_length, length);
    if (args.common.output == OutputFormat::Json)
        std::printf("[");
    else
        std::printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    MapEntry curr;
    curr.start = args.start;
    int ret = 0;
    while (curr.start + curr.length < length) {
        uint64_t offset = curr.start + curr.length;
        uint64_t n = std::min<uint64_t>(length - offset, 1ull << 30);
        auto next = co_await block_status_entry(node, offset, n);
        if (!next) {
            report_error("Could not read file metadata: " + next.error().message());
            ret = 1;
            break;
        }
        if (mergeable(curr, *next)) {
            curr.length += next->length;
            continue;
        }
        if (curr.length > 0 && !dump_entry(args.common.output, curr, &*next)) {
            ret = 1;
            break;
        }
        curr = *next;
    }
    if (ret == 0 && !dump_entry(args.common.output, curr, nullptr))
        ret = 1;
    if (args.common.output == OutputFormat::Json)
        std::puts("]");
    (void)co_await close_image(*image);
    co_return ret;
}

} // namespace

int img_map(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_START = 300, OPT_MAXLEN };
    MapArgs args;
    int rc = parse_options(env, argc, argv, ":f:hU", k_long_standard | k_long_format | k_long_output,
                           {{"start-offset", required_argument, nullptr, OPT_START},
                            {"max-length", required_argument, nullptr, OPT_MAXLEN}},
                           args.common, [&](int c) {
                               auto v = parse_size(optarg);
                               if (!v) {
                                   report_error(std::string("Invalid ")
                                                + (c == OPT_START ? "start offset" : "max length")
                                                + " specified: " + optarg);
                                   return 1;
                               }
                               if (c == OPT_START)
                                   args.start = *v;
                               else
                                   args.max_length = *v;
                               return k_parse_continue;
                           });
    if (rc != k_parse_continue)
        return rc;
    auto filename = one_filename(argc, argv, args.common);
    if (!filename)
        return 1;
    args.filename = *filename;
    return env.run(do_map(env, args));
}

} // namespace kiln::tools
