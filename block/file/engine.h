// IoEngine: how a file node's reads, writes and flushes reach the kernel.
// One engine per open file; the file node does alignment, short-transfer
// loops and zero-filling, an engine does one system call's worth of work.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>

#include <sys/uio.h>

#include "block/types.h"
#include "util/event_loop.h"
#include "util/result.h"
#include "util/task.h"
#include "util/thread_pool.h"

namespace kiln::block {

enum class IoOp { Read, Write, Flush };

class IoEngine {
public:
    virtual ~IoEngine() = default;
    virtual AioEngine kind() const = 0;
    // One preadv/pwritev/fdatasync. Returns bytes transferred (may be short)
    // or -errno. The iovec array must stay valid until the task completes.
    virtual Task<int64_t> submit(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count) = 0;
};

// Runs the system call on worker threads of its own (always available).
std::unique_ptr<IoEngine> make_threads_engine(EventLoop& loop);
// Linux AIO (io_submit) completing through an eventfd in the event loop.
// Flushes go to the thread pool, as Linux AIO has no usable fsync.
Result<std::unique_ptr<IoEngine>> make_native_engine(EventLoop& loop, ThreadPool& pool);
// io_uring with its completion eventfd registered in the event loop.
Result<std::unique_ptr<IoEngine>> make_uring_engine(EventLoop& loop);

// Performs op synchronously (the threads engine's work; also used for
// flushes by the native engine). Returns bytes or -errno.
int64_t run_io_syscall(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count);

// One request on its way through an engine; lives in the frame of the
// coroutine that submitted it.
struct EngineRequest {
    IoOp op;
    int fd;
    uint64_t offset;
    const iovec* iov;
    int iov_count;
    int64_t result = 0; // bytes or -errno, set before `waiter` is resumed
    std::coroutine_handle<> waiter;
};

// Awaitable: records the awaiting coroutine in req.waiter, then calls
// enqueue() to hand the request to the engine, which resumes the waiter
// when req.result is set.
template<typename Enqueue> auto wait_for_completion(EngineRequest& req, Enqueue enqueue)
{
    struct Awaiter {
        EngineRequest* req;
        Enqueue enqueue;
        bool await_ready() { return false; }
        void await_suspend(std::coroutine_handle<> h)
        {
            req->waiter = h;
            enqueue();
        }
        void await_resume() { }
    };
    return Awaiter { &req, std::move(enqueue) };
}

// Defers an engine's submission to a bottom half, so the requests that
// coroutines issue during one event-loop pass reach the kernel in one
// system call (QEMU plugs and unplugs its aio queues to the same end):
// fewer system calls, and on virtio hosts fewer queue notifications.
class SubmitBatch {
public:
    explicit SubmitBatch(EventLoop& loop) : m_loop(loop) {}
    ~SubmitBatch() { *m_alive = false; }
    SubmitBatch(const SubmitBatch&) = delete;
    SubmitBatch& operator=(const SubmitBatch&) = delete;

    // Runs `submit` once, later in this loop pass, however often asked.
    template<typename F> void request(F submit)
    {
        if (m_scheduled)
            return;
        m_scheduled = true;
        m_loop.schedule([this, alive = m_alive, submit] {
            if (!*alive)
                return;
            m_scheduled = false;
            submit();
        });
    }

private:
    EventLoop& m_loop;
    bool m_scheduled = false;
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
};

// Requests each engine keeps in the kernel at once; more wait in a queue.
constexpr unsigned k_engine_queue_depth = 256;

} // namespace kiln::block
