// Placeholder until the qcow2 driver lands.
#include "block/registry.h"

namespace kiln::block {

static Task<Result<std::unique_ptr<BlockNode>>> open_qcow2(BlockContext&, std::unique_ptr<BlockNode>, const ImageSpec&)
{
    co_return Error::not_supported("format 'qcow2' is not built yet");
}

static Task<Result<void>> create_qcow2(BlockContext&, const std::string&, uint64_t, const OptionList&)
{
    co_return Error::not_supported("format 'qcow2' is not built yet");
}

const FormatDriver& qcow2_format_driver()
{
    static const FormatDriver driver{"qcow2", [](std::span<const uint8_t>, const std::string&) { return 0; }, open_qcow2,
                                     create_qcow2, [] { return std::vector<CreateOptionInfo>{}; }};
    return driver;
}

} // namespace kiln::block
