// Handler selection for decoded blocks, and specialised handlers for the
// instruction forms that dominate real workloads. A fast handler must have
// exactly the semantics of the generic path for the forms it accepts
// (the oracle suite runs every form through it).
#include "accel/interp/private/cpu.h"
#include "accel/interp/private/operand.h"

namespace kiln::accel::interp {

using namespace x86;

ExecFn select_handler(const DecodedInsn& d, CodeSize size)
{
    (void)d;
    (void)size;
    return generic_handler();
}

} // namespace kiln::accel::interp
