// The `threads` engine: blocking system calls on the shared thread pool.
#include <unistd.h>

#include <cerrno>

#include "block/file/engine.h"

namespace kiln::block {

int64_t run_io_syscall(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count)
{
    ssize_t n;
    do {
        switch (op) {
        case IoOp::Read: n = ::preadv(fd, iov, iov_count, off_t(offset)); break;
        case IoOp::Write: n = ::pwritev(fd, iov, iov_count, off_t(offset)); break;
        case IoOp::Flush: n = ::fdatasync(fd); break;
        default: n = -1; errno = EINVAL;
        }
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -int64_t(errno) : int64_t(n);
}

namespace {

class ThreadsEngine final : public IoEngine {
public:
    explicit ThreadsEngine(ThreadPool& pool) : m_pool(pool) {}
    AioEngine kind() const override { return AioEngine::Threads; }

    Task<int64_t> submit(IoOp op, int fd, uint64_t offset, const iovec* iov, int iov_count) override
    {
        co_return co_await m_pool.run([=] { return run_io_syscall(op, fd, offset, iov, iov_count); });
    }

private:
    ThreadPool& m_pool;
};

} // namespace

std::unique_ptr<IoEngine> make_threads_engine(ThreadPool& pool) { return std::make_unique<ThreadsEngine>(pool); }

} // namespace kiln::block
