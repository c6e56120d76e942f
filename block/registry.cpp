#include "block/registry.h"

namespace kiln::block {

std::vector<const FormatDriver*> all_format_drivers()
{
    return {&qcow2_format_driver(), &luks_format_driver(), &raw_format_driver()};
}

} // namespace kiln::block
