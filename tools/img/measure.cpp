// kiln-img measure [--output=ofmt] [-O output_fmt] [-o options]
// [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]
//
// How large a new image would be, computed as QEMU's qcow2/raw drivers
// compute it: metadata for the whole virtual size plus the clusters that
// hold data in the input.
#include <cinttypes>
#include <cstdio>

#include "block/dirty_bitmap.h"
#include "tools/common/qjson.h"
#include "tools/img/commands.h"
#include "tools/img/create_options.h"
#include "tools/img/options.h"
#include "util/size.h"

namespace kiln::tools {

namespace {

uint64_t div_round_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
uint64_t round_up(uint64_t a, uint64_t b) { return div_round_up(a, b) * b; }

// Refcount table + blocks covering `clusters` clusters and themselves:
// iterate to the fixed point where nothing more needs counting.
uint64_t refcount_metadata_bytes(uint64_t clusters, uint64_t cluster_bytes, unsigned refcount_bits)
{
    uint64_t per_table_cluster = cluster_bytes / 8;
    uint64_t per_block = cluster_bytes * 8 / refcount_bits;
    uint64_t table = 0, blocks = 0, n = 0, last;
    do {
        last = n;
        blocks = div_round_up(clusters + table + blocks, per_block);
        table = div_round_up(blocks, per_table_cluster);
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * cluster_bytes;
}

} // namespace

uint64_t qcow2_fully_allocated_bytes(
    uint64_t virtual_bytes, uint64_t cluster_bytes, unsigned refcount_bits, bool extended_l2)
{
    uint64_t aligned = round_up(virtual_bytes, cluster_bytes);
    uint64_t l2_entry = extended_l2 ? 16 : 8;
    uint64_t meta = cluster_bytes; // header
    uint64_t l2_entries = round_up(aligned / cluster_bytes, cluster_bytes / l2_entry);
    meta += l2_entries * l2_entry;
    uint64_t l1_entries = round_up(l2_entries * l2_entry / cluster_bytes, cluster_bytes / 8);
    meta += l1_entries * 8;
    meta += refcount_metadata_bytes((meta + aligned) / cluster_bytes, cluster_bytes, refcount_bits);
    return meta + aligned;
}

namespace {

struct MeasureArgs {
    CommonOptions common;
    std::string out_format = "raw";
    std::string options;
    std::optional<uint64_t> size;
    std::string filename;
    std::string snapshot;
};

struct Measure {
    uint64_t required = 0;
    uint64_t fully_allocated = 0;
    std::optional<uint64_t> bitmaps;
};

// What convert --bitmaps would add (QEMU's estimate): each bitmap whole,
// its table, and the directory, all in whole clusters.
uint64_t qcow2_bitmaps_bytes(block::BlockNode& in, uint64_t cluster_bytes)
{
    block::PersistentBitmaps* bitmaps = in.persistent_bitmaps();
    if (!bitmaps || !bitmaps->bitmaps_supported())
        return 0;
    auto up = [&](uint64_t n) { return (n + cluster_bytes - 1) / cluster_bytes * cluster_bytes; };
    uint64_t total = 0, dir_bytes = 0;
    for (const auto& b : bitmaps->bitmaps()) {
        uint64_t bits = (in.size_bytes() + b.granularity_bytes - 1) / b.granularity_bytes;
        uint64_t clusters = up((bits + 7) / 8) / cluster_bytes;
        total += clusters * cluster_bytes + up(clusters * 8);
        dir_bytes += (24 + b.name.size() + 7) / 8 * 8;
    }
    return total + up(dir_bytes);
}

// Bytes of clusters holding data in the input (zero ranges skipped).
Task<Result<uint64_t>> data_bytes(block::BlockNode& in, uint64_t cluster_bytes)
{
    uint64_t size = in.size_bytes(), offset = 0, required = 0;
    while (offset < size) {
        auto st = CO_TRY(co_await in.block_status_above(offset, size - offset));
        uint64_t pnum = std::max<uint64_t>(st.bytes, 1);
        if (!(st.flags & block::BlockStatus::Zero) && (st.flags & block::BlockStatus::Data)
            && (st.flags & block::BlockStatus::Allocated)) {
            // Count whole clusters: extend to the end of the last one.
            pnum = round_up(offset + pnum, cluster_bytes) - offset;
            required += offset % cluster_bytes + pnum;
        }
        offset += pnum;
    }
    co_return required;
}

Task<Result<Measure>> measure(ToolEnv& env, MeasureArgs args)
{
    const block::FormatDriver* driver = env.ctx().find_format(args.out_format);
    if (!driver)
        co_return Error::invalid("Unknown file format '" + args.out_format + "'");
    OptionList opts = CO_TRY(OptionList::parse(args.options));
    CO_TRY(validate_create_options(*driver, opts));
    std::optional<OpenedImage> in;
    uint64_t virtual_bytes = args.size.value_or(0);
    if (!args.filename.empty()) {
        in = co_await open_or_report(env, request_from(args.common, args.filename));
        if (!in)
            co_return Error::invalid("");
        if (!args.snapshot.empty()) {
            auto r = co_await in->node->snapshot_load_tmp(args.snapshot, "");
            if (!r)
                r = co_await in->node->snapshot_load_tmp("", args.snapshot);
            if (!r) {
                (void)co_await close_image(*in);
                co_return Error(r.error().kind(), "Failed to load snapshot: " + r.error().message());
            }
        }
        virtual_bytes = in->node->size_bytes();
    }
    Measure m;
    Result<void> status = ok();
    if (args.out_format == "qcow2") {
        uint64_t cluster = opts.get("cluster_size") ? parse_size(*opts.get("cluster_size")).value() : 65536;
        unsigned refcount_bits = opts.get("refcount_bits") ? unsigned(std::stoul(*opts.get("refcount_bits"))) : 16;
        bool extended = opts.get("extended_l2") && parse_bool_option("extended_l2", *opts.get("extended_l2")).value();
        std::string prealloc = opts.get("preallocation").value_or("off");
        std::string compat = opts.get("compat").value_or("1.1");
        bool v3 = compat != "0.10" && compat != "v2";
        if (cluster < 512 || cluster > (2u << 20) || (cluster & (cluster - 1))) {
            status = Error::invalid("Cluster size must be a power of two between 512 and 2048k");
        } else if (refcount_bits == 0 || refcount_bits > 64 || (refcount_bits & (refcount_bits - 1))) {
            status = Error::invalid("Refcount width must be a power of two and may not exceed 64 bits");
        } else {
            uint64_t aligned = round_up(virtual_bytes, cluster);
            uint64_t required = 0;
            if (in) {
                if (opts.get("backing_file")) {
                    required = aligned;
                } else {
                    auto d = co_await data_bytes(*in->node, cluster);
                    if (d)
                        required = *d;
                    else
                        status = d.error();
                }
            }
            if (prealloc == "full" || prealloc == "falloc")
                required = aligned;
            m.fully_allocated = qcow2_fully_allocated_bytes(virtual_bytes, cluster, refcount_bits, extended);
            m.required = m.fully_allocated - aligned + required;
            // Persistent bitmaps travel only from a qcow2 input into a v3 image.
            if (in && v3 && in->format == "qcow2")
                m.bitmaps = qcow2_bitmaps_bytes(*in->node, cluster);
        }
    } else {
        m.required = m.fully_allocated = round_up(virtual_bytes, 512);
    }
    if (in)
        (void)co_await close_image(*in);
    CO_TRY(std::move(status));
    co_return m;
}

} // namespace

int img_measure(ToolEnv& env, int argc, char** argv)
{
    enum { OPT_SIZE = 300 };
    MeasureArgs args;
    std::optional<std::string> size_text;
    int rc = parse_options(env, argc, argv, ":hf:l:O:o:U", k_long_standard | k_long_output,
        { { "size", required_argument, nullptr, OPT_SIZE } }, args.common, [&](int c) {
            switch (c) {
            case 'O':
                args.out_format = optarg;
                break;
            case 'o':
                append_options(args.options, optarg);
                break;
            case 'l':
                args.snapshot = optarg;
                break;
            case OPT_SIZE:
                size_text = optarg;
                break;
            }
            return k_parse_continue;
        });
    if (rc != k_parse_continue)
        return rc;
    if (size_text) {
        auto v = parse_size(*size_text);
        if (!v) {
            report_error("Invalid image size specified. Must be between 0 and 9223372036854775807.");
            return 1;
        }
        args.size = *v;
    }
    if (optind < argc)
        args.filename = argv[optind++];
    if (optind < argc)
        return error_exit("Too many arguments");
    if (args.filename.empty() && !args.size) {
        report_error("Either --size N or one filename must be specified.");
        return 1;
    }
    if (!args.filename.empty() && args.size) {
        report_error("--size N cannot be used together with a filename.");
        return 1;
    }
    auto ofmt = parse_output_format(args.common.output_text);
    if (!ofmt) {
        report_error(ofmt.error().message());
        return 1;
    }
    auto m = env.run(measure(env, args));
    if (!m) {
        if (!m.error().message().empty())
            report_error(m.error().message());
        return 1;
    }
    if (*ofmt == OutputFormat::Json) {
        Json j = Json::object();
        j["required"] = m->required;
        j["fully-allocated"] = m->fully_allocated;
        if (m->bitmaps)
            j["bitmaps"] = *m->bitmaps;
        std::printf("%s\n", qjson_pretty(j).c_str());
    } else {
        std::printf("required size: %" PRIu64 "\n", m->required);
        std::printf("fully allocated size: %" PRIu64 "\n", m->fully_allocated);
        if (m->bitmaps)
            std::printf("bitmaps size: %" PRIu64 "\n", *m->bitmaps);
    }
    return 0;
}

} // namespace kiln::tools
