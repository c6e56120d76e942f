// The `native` engine: Linux AIO (io_submit) with completions signalled on
// an eventfd watched by the event loop. Linux AIO is only asynchronous with
// O_DIRECT, which is why QEMU (and Kiln) require cache.direct=on for it.
#include <libaio.h>
#include <unistd.h>

#include <coroutine>
#include <deque>
#include <vector>

#include <sys/eventfd.h>

#include "block/file/engine.h"

namespace kiln::block {

namespace {

struct AioRequest : EngineRequest {
    iocb cb {};
};

class NativeEngine final : public IoEngine {
public:
    NativeEngine(EventLoop& loop, ThreadPool& pool)
        : m_loop(loop)
        , m_pool(pool)
        , m_batch(loop)
    {
    }
    ~NativeEngine() override
    {
        if (m_event_fd >= 0) {
            m_loop.remove_fd(m_event_fd);
            ::close(m_event_fd);
        }
        if (m_ctx)
            io_destroy(m_ctx);
    }

    Result<void> init()
    {
        int r = io_setup(int(k_engine_queue_depth), &m_ctx);
        if (r < 0)
            return Error::from_errno(-r, "Unable to use native AIO");
        m_event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m_event_fd < 0)
            return Error::from_errno(errno, "Unable to use native AIO");
        return m_loop.add_fd(m_event_fd, FdEvents::Read, [this](uint32_t) { on_completion(); });
    }

    AioEngine kind() const override { return AioEngine::Native; }

    Task<int64_t> submit(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count) override
    {
        if (op == IoOp::Flush)
            co_return co_await m_pool.run([=] { return run_io_syscall(op, fd, offset, iov, iov_count); });
        AioRequest req;
        req.op = op;
        if (op == IoOp::Read)
            io_prep_preadv(&req.cb, fd, iov, iov_count, (long long)offset);
        else
            io_prep_pwritev(&req.cb, fd, iov, iov_count, (long long)offset);
        io_set_eventfd(&req.cb, m_event_fd);
        req.cb.data = &req;
        co_await wait_for_completion(req, [&] {
            m_queued.push_back(&req);
            m_batch.request([this] { submit_queued(); });
        });
        co_return req.result;
    }

private:
    void submit_queued()
    {
        while (!m_queued.empty() && m_in_flight < k_engine_queue_depth) {
            size_t n = std::min<size_t>(m_queued.size(), k_engine_queue_depth - m_in_flight);
            std::vector<iocb*> batch;
            for (size_t i = 0; i < n; ++i)
                batch.push_back(&m_queued[i]->cb);
            int r = io_submit(m_ctx, long(batch.size()), batch.data());
            if (r == -EAGAIN || r == 0) {
                // The kernel is full; completions will call us again.
                if (m_in_flight == 0)
                    fail_front(-EAGAIN);
                return;
            }
            if (r < 0) {
                // The first request is bad (e.g. misaligned): fail it alone.
                fail_front(r);
                continue;
            }
            for (int i = 0; i < r; ++i)
                m_queued.pop_front();
            m_in_flight += unsigned(r);
        }
    }

    void fail_front(int err)
    {
        AioRequest* req = m_queued.front();
        m_queued.pop_front();
        req->result = err;
        auto h = req->waiter;
        m_loop.schedule([h] { h.resume(); });
    }

    void on_completion()
    {
        uint64_t count;
        (void)!::read(m_event_fd, &count, sizeof count);
        std::vector<std::coroutine_handle<>> ready;
        io_event events[64];
        timespec no_wait { 0, 0 };
        for (;;) {
            int n = io_getevents(m_ctx, 0, 64, events, &no_wait);
            if (n <= 0)
                break;
            for (int i = 0; i < n; ++i) {
                auto* req = static_cast<AioRequest*>(events[i].data);
                // res is unsigned long; negative values are -errno.
                req->result = int64_t(long(events[i].res));
                ready.push_back(req->waiter);
            }
            m_in_flight -= unsigned(n);
        }
        submit_queued();
        // Resume last: a resumed coroutine may close the file and free us.
        for (auto h : ready)
            h.resume();
    }

    EventLoop& m_loop;
    ThreadPool& m_pool;
    io_context_t m_ctx = nullptr;
    int m_event_fd = -1;
    unsigned m_in_flight = 0;
    std::deque<AioRequest*> m_queued;
    SubmitBatch m_batch;
};

} // namespace

Result<std::unique_ptr<IoEngine>> make_native_engine(EventLoop& loop, ThreadPool& pool)
{
    auto engine = std::make_unique<NativeEngine>(loop, pool);
    TRY(engine->init());
    return std::unique_ptr<IoEngine>(std::move(engine));
}

} // namespace kiln::block
