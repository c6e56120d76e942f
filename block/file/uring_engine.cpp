// The `io_uring` engine: one ring per open file, completions signalled
// through an eventfd that the event loop watches. Requests beyond the ring's
// size wait in a queue and are submitted as completions free slots.
#include <liburing.h>
#include <unistd.h>

#include <coroutine>
#include <deque>
#include <vector>

#include <sys/eventfd.h>

#include "block/file/engine.h"

namespace kiln::block {

namespace {

class UringEngine final : public IoEngine {
public:
    UringEngine(EventLoop& loop)
        : m_loop(loop)
    {
    }
    ~UringEngine() override
    {
        if (m_event_fd >= 0) {
            m_loop.remove_fd(m_event_fd);
            ::close(m_event_fd);
        }
        if (m_ring_ready)
            io_uring_queue_exit(&m_ring);
    }

    Result<void> init()
    {
        int r = io_uring_queue_init(k_engine_queue_depth, &m_ring, 0);
        if (r < 0)
            return Error::from_errno(-r, "Unable to use io_uring");
        m_ring_ready = true;
        m_event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m_event_fd < 0)
            return Error::from_errno(errno, "Unable to use io_uring");
        r = io_uring_register_eventfd(&m_ring, m_event_fd);
        if (r < 0)
            return Error::from_errno(-r, "Unable to use io_uring");
        return m_loop.add_fd(m_event_fd, FdEvents::Read, [this](uint32_t) { on_completion(); });
    }

    AioEngine kind() const override { return AioEngine::IoUring; }

    Task<int64_t> submit(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count) override
    {
        EngineRequest req { op, fd, offset, iov, iov_count };
        co_await wait_for_completion(req, [&] { enqueue(&req); });
        co_return req.result;
    }

private:
    void enqueue(EngineRequest* req)
    {
        m_queued.push_back(req);
        m_batch.request([this] { fill_ring(); });
    }

    // Moves queued requests into free submission slots and submits them.
    void fill_ring()
    {
        bool any = false;
        while (!m_queued.empty() && m_in_flight < k_engine_queue_depth) {
            io_uring_sqe* sqe = io_uring_get_sqe(&m_ring);
            if (!sqe)
                break;
            EngineRequest* req = m_queued.front();
            m_queued.pop_front();
            switch (req->op) {
            case IoOp::Read:
                io_uring_prep_readv(sqe, req->fd, req->iov, unsigned(req->iov_count), req->offset);
                break;
            case IoOp::Write:
                io_uring_prep_writev(sqe, req->fd, req->iov, unsigned(req->iov_count), req->offset);
                break;
            case IoOp::Flush:
                io_uring_prep_fsync(sqe, req->fd, IORING_FSYNC_DATASYNC);
                break;
            }
            io_uring_sqe_set_data(sqe, req);
            ++m_in_flight;
            any = true;
        }
        if (!any)
            return;
        int r;
        do {
            r = io_uring_submit(&m_ring);
        } while (r == -EINTR);
        // A failed submit (EAGAIN/EBUSY: kernel short of resources) leaves
        // the entries in the ring; retry shortly rather than hang.
        if (r < 0)
            fill_ring_retry();
    }

    void fill_ring_retry()
    {
        if (m_retry_pending)
            return;
        m_retry_pending = true;
        m_loop.add_timer_ns(1'000'000, [this] {
            m_retry_pending = false;
            if (io_uring_submit(&m_ring) < 0)
                fill_ring_retry();
        });
    }

    void on_completion()
    {
        uint64_t count;
        (void)!::read(m_event_fd, &count, sizeof count);
        std::vector<std::coroutine_handle<>> ready;
        io_uring_cqe* cqe;
        while (io_uring_peek_cqe(&m_ring, &cqe) == 0) {
            auto* req = static_cast<EngineRequest*>(io_uring_cqe_get_data(cqe));
            req->result = cqe->res;
            io_uring_cqe_seen(&m_ring, cqe);
            --m_in_flight;
            ready.push_back(req->waiter);
        }
        fill_ring();
        // Resume last: a resumed coroutine may close the file and free us.
        for (auto h : ready)
            h.resume();
    }

    EventLoop& m_loop;
    io_uring m_ring {};
    bool m_ring_ready = false;
    int m_event_fd = -1;
    unsigned m_in_flight = 0;
    bool m_retry_pending = false;
    std::deque<EngineRequest*> m_queued;
    SubmitBatch m_batch{m_loop};
};

} // namespace

Result<std::unique_ptr<IoEngine>> make_uring_engine(EventLoop& loop)
{
    auto engine = std::make_unique<UringEngine>(loop);
    TRY(engine->init());
    return std::unique_ptr<IoEngine>(std::move(engine));
}

} // namespace kiln::block
