// ThreadPool: runs blocking or CPU-heavy work (compression, encryption,
// the `threads` aio engine) on worker threads and resumes the awaiting
// coroutine on the event loop thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "util/event_loop.h"

namespace kiln {

class ThreadPool {
public:
    // workers == 0 means one per online CPU.
    ThreadPool(EventLoop& loop, unsigned workers = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    unsigned worker_count() const { return unsigned(m_threads.size()); }

    // Runs `work` on a worker; `done` runs afterwards on the loop thread.
    void submit(std::function<void()> work, std::function<void()> done);

    // Awaitable: co_await pool.run(fn) runs fn on a worker and yields its
    // result on the loop thread. fn's captures must outlive the await.
    template<typename F>
    auto run(F fn)
    {
        using R = decltype(fn());
        struct Awaiter {
            ThreadPool* pool;
            F fn;
            std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
            bool await_ready() { return false; }
            void await_suspend(std::coroutine_handle<> h)
            {
                pool->submit(
                    [this] {
                        if constexpr (std::is_void_v<R>) {
                            fn();
                            result.emplace(true);
                        } else {
                            result.emplace(fn());
                        }
                    },
                    [h] { h.resume(); });
            }
            R await_resume()
            {
                if constexpr (!std::is_void_v<R>)
                    return std::move(*result);
            }
        };
        return Awaiter{this, std::move(fn), {}};
    }

private:
    void worker_main();

    EventLoop& m_loop;
    std::mutex m_lock;
    std::condition_variable m_wake;
    std::deque<std::pair<std::function<void()>, std::function<void()>>> m_queue;
    bool m_shutdown = false;
    std::vector<std::thread> m_threads;
};

} // namespace kiln
