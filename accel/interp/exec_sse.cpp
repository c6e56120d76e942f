// SSE/SSE2 and the state instructions around them (FXSAVE/FXRSTOR,
// LDMXCSR/STMXCSR, fences, CLFLUSH).
#include "accel/interp/private/cpu.h"

namespace kiln::accel::interp {

bool InterpreterImpl::exec_sse(const DecodedInsn& d)
{
    (void)d;
    return false;
}

} // namespace kiln::accel::interp
