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

// The machine lock as completions take it. The board implements it with
// its MachineLock, which also refreshes what the vCPU polls on release.
class DeviceLock {
public:
    virtual ~DeviceLock() = default;
    virtual void acquire() = 0;
    virtual void release() = 0;
};

class DeviceLockGuard {
public:
    explicit DeviceLockGuard(DeviceLock* lock)
        : m_lock(lock)
    {
        if (m_lock)
            m_lock->acquire();
    }
    ~DeviceLockGuard()
    {
        if (m_lock)
            m_lock->release();
    }
    DeviceLockGuard(const DeviceLockGuard&) = delete;
    DeviceLockGuard& operator=(const DeviceLockGuard&) = delete;

private:
    DeviceLock* m_lock;
};

struct DeviceIoContext {
    EventLoop* loop = nullptr;
    // The machine lock (nullptr in single-threaded device tests).
    DeviceLock* machine_lock = nullptr;
    GuestMemory* memory = nullptr;

    // Starts `task` on the loop thread (thread-safe, never runs it inline).
    void start(Task<void> task) const;
    // Held by completions while they update device state.
    [[nodiscard]] DeviceLockGuard lock_machine() const { return DeviceLockGuard(machine_lock); }
};

// Lets a device's completions notice the device is gone (teardown with
// requests in flight): they hold a weak copy and check it under the lock.
using AliveToken = std::shared_ptr<bool>;

} // namespace kiln::hw
