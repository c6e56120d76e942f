// x87 floating point.
#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

bool InterpreterImpl::exec_x87(const DecodedInsn& d)
{
    (void)d;
    return false;
}

} // namespace kiln::accel::interp
