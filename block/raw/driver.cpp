// The raw format driver: probe (always a weak match), open, create.
#include "block/raw/raw_node.h"
#include "block/registry.h"

namespace kiln::block {

static Task<Result<std::unique_ptr<BlockNode>>> open_raw(
    BlockContext& ctx, std::unique_ptr<BlockNode> file, const ImageSpec& spec)
{
    auto node = RawNode::open(ctx, std::move(file), spec);
    if (!node)
        co_return std::move(node).error();
    co_return std::unique_ptr<BlockNode>(std::move(node).value());
}

static Task<Result<void>> create_raw(
    BlockContext& ctx, const std::string& filename, uint64_t size_bytes, const OptionList& options)
{
    PreallocMode prealloc = PreallocMode::Off;
    if (auto name = options.get("preallocation")) {
        auto mode = parse_prealloc(*name);
        if (!mode)
            co_return Error::invalid("invalid parameter value: " + *name);
        prealloc = *mode;
    }
    // Accepted as QEMU's file protocol does; meaningful only on btrfs/xfs.
    options.consume("nocow");
    options.consume("extent_size_hint");
    co_return co_await ctx.create_file(filename, size_bytes, prealloc, options.subtree("file"));
}

static std::vector<CreateOptionInfo> raw_create_options()
{
    return {
        { "extent_size_hint", "size", "Extent size hint for the image file, 0 to disable", "" },
        { "nocow", "bool", "Turn off copy-on-write (valid only on btrfs)", "" },
        { "preallocation", "str", "Preallocation mode (allowed values: off, falloc, full)", "off" },
        { "size", "size", "Virtual disk size", "" },
    };
}

static int probe_raw(std::span<const uint8_t>, const std::string&)
{
    // Anything can be raw; every real format outscores this.
    return 1;
}

const FormatDriver& raw_format_driver()
{
    static const FormatDriver driver { "raw", probe_raw, open_raw, create_raw, raw_create_options };
    return driver;
}

} // namespace kiln::block
