// How disk controllers run block requests without blocking the vCPU: a
// register write (machine lock held, vCPU thread) posts the request to the
// event loop; the coroutine runs there, and its completion takes the
// machine lock before touching device state and raising the IRQ.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "util/event_loop.h"
#include "util/task.h"

namespace kiln::hw {

class GuestMemory;

struct DeviceIoContext {
    EventLoop* loop = nullptr;
    // The machine lock (nullptr in single-threaded device tests).
    std::mutex* machine_lock = nullptr;
    GuestMemory* memory = nullptr;

    // Starts `task` on the loop thread (thread-safe, never runs it inline).
    void start(Task<void> task) const;
    // Held by completions while they update device state.
    std::unique_lock<std::mutex> lock_machine() const
    {
        return machine_lock ? std::unique_lock<std::mutex>(*machine_lock) : std::unique_lock<std::mutex>();
    }
};

// Lets a device's completions notice the device is gone (teardown with
// requests in flight): they hold a weak copy and check it under the lock.
using AliveToken = std::shared_ptr<bool>;

} // namespace kiln::hw
