#include <gtest/gtest.h>

#include "util/co_sync.h"
#include "util/event_loop.h"
#include "util/thread_pool.h"

using namespace kiln;

static Task<Result<int>> leaf(EventLoop& loop, int v)
{
    co_await loop.yield();
    if (v < 0)
        co_return Error::invalid("negative");
    co_return v + 1;
}

static Task<Result<int>> chain(EventLoop& loop, int v)
{
    int a = CO_TRY(co_await leaf(loop, v));
    int b = CO_TRY(co_await leaf(loop, a));
    co_return a + b;
}

TEST(Task, ChainsAndPropagatesErrors)
{
    auto loop = EventLoop::create().value();
    auto r = loop->run_until_complete(chain(*loop, 1));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), 2 + 3);
    auto bad = loop->run_until_complete(chain(*loop, -5));
    EXPECT_FALSE(bad.ok());
}

TEST(Task, DeepSynchronousChainDoesNotOverflowStack)
{
    // Symmetric transfer: 100k nested awaits that complete synchronously.
    struct Rec {
        static Task<int> count(int n)
        {
            if (n == 0)
                co_return 0;
            co_return 1 + co_await count(n - 1);
        }
    };
    auto loop = EventLoop::create().value();
    EXPECT_EQ(loop->run_until_complete(Rec::count(100000)), 100000);
}

TEST(Task, MutexSerialisesAndWaitGroupWaits)
{
    auto loop = EventLoop::create().value();
    CoMutex mutex(*loop);
    CoWaitGroup group(*loop);
    std::vector<int> order;
    auto worker = [&](int id) -> Task<void> {
        co_await mutex.lock();
        order.push_back(id);
        co_await loop->yield();
        order.push_back(id);
        mutex.unlock();
        group.done();
    };
    auto main_task = [&]() -> Task<void> {
        for (int i = 0; i < 3; ++i) {
            group.add();
            spawn(worker(i));
        }
        co_await group.wait_idle();
    };
    loop->run_until_complete(main_task());
    EXPECT_EQ(order, (std::vector<int>{0, 0, 1, 1, 2, 2}));
}

TEST(Task, ThreadPoolResumesOnLoop)
{
    auto loop = EventLoop::create().value();
    ThreadPool pool(*loop, 2);
    auto main_task = [&]() -> Task<int> {
        int a = co_await pool.run([] { return 20; });
        int b = co_await pool.run([] { return 22; });
        co_return a + b;
    };
    EXPECT_EQ(loop->run_until_complete(main_task()), 42);
}

TEST(EventLoop, TimersFireInOrderAndCancel)
{
    auto loop = EventLoop::create().value();
    std::vector<int> fired;
    loop->add_timer_ns(2'000'000, [&] { fired.push_back(2); });
    auto id = loop->add_timer_ns(1'000'000, [&] { fired.push_back(99); });
    loop->add_timer_ns(500'000, [&] { fired.push_back(1); });
    loop->cancel_timer(id);
    loop->add_timer_ns(3'000'000, [&] { loop->stop(); });
    loop->run();
    EXPECT_EQ(fired, (std::vector<int>{1, 2}));
}
