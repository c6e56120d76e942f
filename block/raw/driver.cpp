// Placeholder until the raw driver lands.
#include "block/registry.h"

namespace kiln::block {

static Task<Result<std::unique_ptr<BlockNode>>> open_raw(BlockContext&, std::unique_ptr<BlockNode>, const ImageSpec&)
{
    co_return Error::not_supported("format 'raw' is not built yet");
}

static Task<Result<void>> create_raw(BlockContext&, const std::string&, uint64_t, const OptionList&)
{
    co_return Error::not_supported("format 'raw' is not built yet");
}

const FormatDriver& raw_format_driver()
{
    static const FormatDriver driver{"raw", [](std::span<const uint8_t>, const std::string&) { return 0; }, open_raw,
                                     create_raw, [] { return std::vector<CreateOptionInfo>{}; }};
    return driver;
}

} // namespace kiln::block
