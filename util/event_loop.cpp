#include "util/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace kiln {

Result<std::unique_ptr<EventLoop>> EventLoop::create()
{
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        return Error::from_errno(errno, "epoll_create1");
    int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        int err = errno;
        close(epoll_fd);
        return Error::from_errno(err, "eventfd");
    }
    std::unique_ptr<EventLoop> loop(new EventLoop(epoll_fd, wake_fd));
    auto added = loop->add_fd(wake_fd, FdEvents::Read, [wake_fd](uint32_t) {
        uint64_t value;
        while (read(wake_fd, &value, sizeof value) == sizeof value) {
        }
    });
    if (!added)
        return std::move(added).error();
    return loop;
}

EventLoop::EventLoop(int epoll_fd, int wake_fd) : m_epoll_fd(epoll_fd), m_wake_fd(wake_fd) {}

EventLoop::~EventLoop()
{
    close(m_wake_fd);
    close(m_epoll_fd);
}

static uint32_t to_epoll(FdEvents events)
{
    uint32_t mask = 0;
    if (uint32_t(events) & uint32_t(FdEvents::Read))
        mask |= EPOLLIN | EPOLLRDHUP;
    if (uint32_t(events) & uint32_t(FdEvents::Write))
        mask |= EPOLLOUT;
    return mask;
}

Result<void> EventLoop::add_fd(int fd, FdEvents events, std::function<void(uint32_t)> on_event)
{
    epoll_event ev{};
    ev.events = to_epoll(events);
    ev.data.fd = fd;
    if (epoll_ctl(m_epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return Error::from_errno(errno, "epoll_ctl ADD");
    m_fd_handlers[fd] = std::move(on_event);
    return {};
}

Result<void> EventLoop::modify_fd(int fd, FdEvents events)
{
    epoll_event ev{};
    ev.events = to_epoll(events);
    ev.data.fd = fd;
    if (epoll_ctl(m_epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return Error::from_errno(errno, "epoll_ctl MOD");
    return {};
}

void EventLoop::remove_fd(int fd)
{
    epoll_ctl(m_epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    m_fd_handlers.erase(fd);
}

uint64_t EventLoop::now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

EventLoop::TimerId EventLoop::add_timer_ns(uint64_t delay_ns, Callback callback)
{
    TimerId id = m_next_timer_id++;
    uint64_t deadline = now_ns() + delay_ns;
    m_timers.emplace(deadline, std::make_pair(id, std::move(callback)));
    m_timer_deadlines[id] = deadline;
    return id;
}

void EventLoop::cancel_timer(TimerId id)
{
    auto it = m_timer_deadlines.find(id);
    if (it == m_timer_deadlines.end())
        return;
    auto [begin, end] = m_timers.equal_range(it->second);
    for (auto t = begin; t != end; ++t) {
        if (t->second.first == id) {
            m_timers.erase(t);
            break;
        }
    }
    m_timer_deadlines.erase(it);
}

void EventLoop::schedule(Callback callback) { m_bottom_halves.push_back(std::move(callback)); }

void EventLoop::post(Callback callback)
{
    {
        std::lock_guard guard(m_posted_lock);
        m_posted.push_back(std::move(callback));
    }
    uint64_t one = 1;
    // A full eventfd counter still wakes the loop, so a failed write is fine.
    (void)!write(m_wake_fd, &one, sizeof one);
}

void EventLoop::run_bottom_halves()
{
    {
        std::lock_guard guard(m_posted_lock);
        if (!m_posted.empty()) {
            for (auto& cb : m_posted)
                m_bottom_halves.push_back(std::move(cb));
            m_posted.clear();
        }
    }
    // Bottom halves may schedule more; run rounds until quiet, but cap a
    // round so a self-rescheduling BH cannot starve fds and timers.
    for (int round = 0; round < 64 && !m_bottom_halves.empty(); ++round) {
        std::vector<Callback> batch;
        batch.swap(m_bottom_halves);
        for (auto& cb : batch)
            cb();
    }
}

void EventLoop::run_due_timers()
{
    uint64_t now = now_ns();
    while (!m_timers.empty() && m_timers.begin()->first <= now) {
        auto node = m_timers.extract(m_timers.begin());
        m_timer_deadlines.erase(node.mapped().first);
        node.mapped().second();
    }
}

int EventLoop::next_timeout_ms(int requested)
{
    bool has_posted;
    {
        std::lock_guard guard(m_posted_lock);
        has_posted = !m_posted.empty();
    }
    if (!m_bottom_halves.empty() || has_posted)
        return 0;
    if (m_timers.empty())
        return requested;
    uint64_t now = now_ns();
    uint64_t deadline = m_timers.begin()->first;
    int timer_ms = deadline <= now ? 0 : int((deadline - now + 999999) / 1000000);
    if (requested < 0 || timer_ms < requested)
        return timer_ms;
    return requested;
}

void EventLoop::run_once(int timeout_ms)
{
    // Wait first and run bottom halves last, so whatever completes in this
    // iteration is visible to the caller before it decides to wait again.
    epoll_event events[64];
    int n = epoll_wait(m_epoll_fd, events, 64, next_timeout_ms(timeout_ms));
    for (int i = 0; i < n; ++i) {
        auto it = m_fd_handlers.find(events[i].data.fd);
        if (it == m_fd_handlers.end())
            continue;
        // Copy: the handler may remove itself.
        auto handler = it->second;
        handler(events[i].events);
    }
    run_due_timers();
    run_bottom_halves();
}

void EventLoop::run()
{
    m_stop = false;
    while (!m_stop)
        run_once();
}

} // namespace kiln
