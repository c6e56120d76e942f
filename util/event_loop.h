// EventLoop: the main thread's epoll loop (fd handlers, timers, bottom
// halves) and the place coroutines are resumed after I/O completes.
//
// Everything except post() runs on the loop's own thread. post() may be
// called from any thread (vCPU threads, the thread pool) and wakes the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "util/result.h"
#include "util/task.h"

namespace kiln {

enum class FdEvents : uint32_t { Read = 1, Write = 2, ReadWrite = 3 };

class EventLoop {
public:
    using Callback = std::function<void()>;
    using TimerId = uint64_t;

    static Result<std::unique_ptr<EventLoop>> create();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // fd handlers: on_event(events_ready). One handler per fd.
    Result<void> add_fd(int fd, FdEvents events, std::function<void(uint32_t)> on_event);
    Result<void> modify_fd(int fd, FdEvents events);
    void remove_fd(int fd);

    // One-shot timer on the monotonic host clock; returns an id to cancel.
    TimerId add_timer_ns(uint64_t delay_ns, Callback callback);
    void cancel_timer(TimerId id);

    // Bottom half: runs on the loop thread in the next iteration.
    void schedule(Callback callback);
    // Thread-safe schedule() that wakes the loop.
    void post(Callback callback);

    // Runs one iteration: waits up to timeout_ms (-1 forever) for events.
    void run_once(int timeout_ms = -1);
    // Runs until stop() is called.
    void run();
    void stop() { m_stop = true; }
    bool stopping() const { return m_stop; }

    // Starts `task` and runs the loop until it completes; returns its value.
    template<typename T>
    T run_until_complete(Task<T> task)
    {
        task.start();
        while (!task.done())
            run_once();
        return task.take_result();
    }

    // Awaitable: suspend the current coroutine and resume it from a bottom
    // half (lets other work in flight make progress).
    auto yield()
    {
        struct Awaiter {
            EventLoop* loop;
            bool await_ready() { return false; }
            void await_suspend(std::coroutine_handle<> h)
            {
                loop->schedule([h] { h.resume(); });
            }
            void await_resume() {}
        };
        return Awaiter{this};
    }

    // Awaitable: resume after delay_ns on the loop.
    auto sleep_ns(uint64_t delay_ns)
    {
        struct Awaiter {
            EventLoop* loop;
            uint64_t ns;
            bool await_ready() { return false; }
            void await_suspend(std::coroutine_handle<> h)
            {
                loop->add_timer_ns(ns, [h] { h.resume(); });
            }
            void await_resume() {}
        };
        return Awaiter{this, delay_ns};
    }

    static uint64_t now_ns();

private:
    EventLoop(int epoll_fd, int wake_fd);
    void run_bottom_halves();
    void run_due_timers();
    int next_timeout_ms(int requested);

    int m_epoll_fd;
    int m_wake_fd;
    bool m_stop = false;
    std::unordered_map<int, std::function<void(uint32_t)>> m_fd_handlers;
    std::vector<Callback> m_bottom_halves;
    std::mutex m_posted_lock;
    std::vector<Callback> m_posted;
    // Deadline -> (id, callback); ordered so the earliest fires first.
    std::multimap<uint64_t, std::pair<TimerId, Callback>> m_timers;
    std::unordered_map<TimerId, uint64_t> m_timer_deadlines;
    TimerId m_next_timer_id = 1;
};

} // namespace kiln
