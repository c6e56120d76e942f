#include "util/thread_pool.h"

namespace kiln {

ThreadPool::ThreadPool(EventLoop& loop, unsigned workers) : m_loop(loop)
{
    if (workers == 0)
        workers = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < workers; ++i)
        m_threads.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool()
{
    {
        std::lock_guard guard(m_lock);
        m_shutdown = true;
    }
    m_wake.notify_all();
    for (auto& t : m_threads)
        t.join();
}

void ThreadPool::submit(std::function<void()> work, std::function<void()> done)
{
    {
        std::lock_guard guard(m_lock);
        m_queue.emplace_back(std::move(work), std::move(done));
    }
    m_wake.notify_one();
}

void ThreadPool::worker_main()
{
    for (;;) {
        std::pair<std::function<void()>, std::function<void()>> item;
        {
            std::unique_lock guard(m_lock);
            m_wake.wait(guard, [this] { return m_shutdown || !m_queue.empty(); });
            if (m_queue.empty())
                return;
            item = std::move(m_queue.front());
            m_queue.pop_front();
        }
        item.first();
        m_loop.post(std::move(item.second));
    }
}

} // namespace kiln
