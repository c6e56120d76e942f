// Coroutine synchronisation for code on one event loop thread: a mutex and
// an event. Waiters are resumed from bottom halves, never recursively.
#pragma once

#include <coroutine>
#include <deque>

#include "util/event_loop.h"

namespace kiln {

class CoMutex {
public:
    explicit CoMutex(EventLoop& loop) : m_loop(&loop) {}

    auto lock()
    {
        struct Awaiter {
            CoMutex* mutex;
            bool await_ready()
            {
                if (!mutex->m_locked) {
                    mutex->m_locked = true;
                    return true;
                }
                return false;
            }
            void await_suspend(std::coroutine_handle<> h) { mutex->m_waiters.push_back(h); }
            void await_resume() {}
        };
        return Awaiter{this};
    }

    // Ownership passes straight to the next waiter, so no one can barge in.
    void unlock()
    {
        if (m_waiters.empty()) {
            m_locked = false;
            return;
        }
        auto next = m_waiters.front();
        m_waiters.pop_front();
        m_loop->schedule([next] { next.resume(); });
    }

    bool locked() const { return m_locked; }

private:
    EventLoop* m_loop;
    bool m_locked = false;
    std::deque<std::coroutine_handle<>> m_waiters;
};

// RAII guard: `auto guard = co_await CoLockGuard::acquire(mutex);`
class CoLockGuard {
public:
    explicit CoLockGuard(CoMutex& mutex) : m_mutex(&mutex) {}
    CoLockGuard(CoLockGuard&& other) noexcept : m_mutex(std::exchange(other.m_mutex, nullptr)) {}
    CoLockGuard& operator=(CoLockGuard&&) = delete;
    ~CoLockGuard()
    {
        if (m_mutex)
            m_mutex->unlock();
    }
    void unlock()
    {
        if (m_mutex)
            std::exchange(m_mutex, nullptr)->unlock();
    }

private:
    CoMutex* m_mutex;
};

inline Task<CoLockGuard> co_lock(CoMutex& mutex)
{
    co_await mutex.lock();
    co_return CoLockGuard(mutex);
}

// A manual-reset event: wait() suspends until set().
class CoEvent {
public:
    explicit CoEvent(EventLoop& loop) : m_loop(&loop) {}

    auto wait()
    {
        struct Awaiter {
            CoEvent* event;
            bool await_ready() { return event->m_set; }
            void await_suspend(std::coroutine_handle<> h) { event->m_waiters.push_back(h); }
            void await_resume() {}
        };
        return Awaiter{this};
    }

    void set()
    {
        m_set = true;
        for (auto h : m_waiters)
            m_loop->schedule([h] { h.resume(); });
        m_waiters.clear();
    }
    void reset() { m_set = false; }
    bool is_set() const { return m_set; }

private:
    EventLoop* m_loop;
    bool m_set = false;
    std::deque<std::coroutine_handle<>> m_waiters;
};

// Counts tasks in flight; wait_idle() resumes when the count reaches zero.
class CoWaitGroup {
public:
    explicit CoWaitGroup(EventLoop& loop) : m_idle(loop) { m_idle.set(); }
    void add(int n = 1)
    {
        m_count += n;
        if (m_count > 0)
            m_idle.reset();
    }
    void done()
    {
        if (--m_count == 0)
            m_idle.set();
    }
    auto wait_idle() { return m_idle.wait(); }
    int count() const { return m_count; }

private:
    CoEvent m_idle;
    int m_count = 0;
};

} // namespace kiln
