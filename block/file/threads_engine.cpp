// The `threads` engine: blocking system calls on worker threads of the
// engine's own, growing pool (one engine per BlockContext, shared by its
// files). Blocking I/O wants more threads than there
// are CPUs (an O_DIRECT read mostly waits), so like QEMU's thread pool it
// starts a worker whenever a request finds none idle, up to a limit.
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "block/file/engine.h"

namespace kiln::block {

int64_t run_io_syscall(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count)
{
    ssize_t n;
    do {
        switch (op) {
        case IoOp::Read:
            n = ::preadv(fd, iov, iov_count, off_t(offset));
            break;
        case IoOp::Write:
            n = ::pwritev(fd, iov, iov_count, off_t(offset));
            break;
        case IoOp::Flush:
            n = ::fdatasync(fd);
            break;
        default:
            n = -1;
            errno = EINVAL;
        }
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -int64_t(errno) : int64_t(n);
}

namespace {

constexpr unsigned k_max_io_threads = 64;

class ThreadsEngine final : public IoEngine {
public:
    explicit ThreadsEngine(EventLoop& loop)
        : m_loop(loop)
    {
    }
    ~ThreadsEngine() override
    {
        {
            std::lock_guard guard(m_lock);
            m_shutdown = true;
        }
        m_wake.notify_all();
        for (auto& t : m_threads)
            t.join();
    }

    AioEngine kind() const override { return AioEngine::Threads; }

    Task<int64_t> submit(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count) override
    {
        EngineRequest req { op, fd, offset, iov, iov_count };
        co_await wait_for_completion(req, [&] { enqueue(&req); });
        co_return req.result;
    }

private:
    void enqueue(EngineRequest* req)
    {
        {
            std::lock_guard guard(m_lock);
            m_queue.push_back(req);
            if (m_idle < m_queue.size() && m_threads.size() < k_max_io_threads)
                m_threads.emplace_back([this] { worker_main(); });
        }
        m_wake.notify_one();
    }

    void worker_main()
    {
        std::unique_lock guard(m_lock);
        for (;;) {
            ++m_idle;
            m_wake.wait(guard, [this] { return m_shutdown || !m_queue.empty(); });
            --m_idle;
            if (m_queue.empty())
                return;
            EngineRequest* req = m_queue.front();
            m_queue.pop_front();
            guard.unlock();
            req->result = run_io_syscall(req->op, req->fd, req->offset, req->iov, req->iov_count);
            auto h = req->waiter;
            m_loop.post([h] { h.resume(); });
            guard.lock();
        }
    }

    EventLoop& m_loop;
    std::mutex m_lock;
    std::condition_variable m_wake;
    std::deque<EngineRequest*> m_queue;
    std::vector<std::thread> m_threads;
    size_t m_idle = 0;
    bool m_shutdown = false;
};

} // namespace

std::unique_ptr<IoEngine> make_threads_engine(EventLoop& loop) { return std::make_unique<ThreadsEngine>(loop); }

} // namespace kiln::block
