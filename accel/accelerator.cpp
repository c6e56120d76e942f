#include "accel/accelerator.h"

namespace kiln::accel {

const char* vcpu_exit_name(VcpuExit exit)
{
    switch (exit) {
    case VcpuExit::Kicked:
        return "kicked";
    case VcpuExit::Stopped:
        return "stopped";
    case VcpuExit::Reset:
        return "reset";
    }
    return "unknown";
}

} // namespace kiln::accel
