#include "hw/block/device_io.h"

namespace kiln::hw {

void DeviceIoContext::start(Task<void> task) const
{
    // std::function needs a copyable callable; the task moves through a
    // shared_ptr and is started exactly once.
    auto holder = std::make_shared<Task<void>>(std::move(task));
    loop->post([holder] { spawn(std::move(*holder)); });
}

} // namespace kiln::hw
