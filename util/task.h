// Task<T>: a lazily started C++20 coroutine that yields one T to the
// coroutine that co_awaits it (symmetric transfer, no recursion on resume).
//
// Only coroutines can co_await a Task, so the compiler enforces what QEMU
// marks by convention (coroutine_fn). Top-level code starts a Task with
// spawn() (detached, runs until its first suspension at once) or drives the
// event loop until it completes with EventLoop::run_until_complete().
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "util/result.h"

namespace kiln {

template<typename T>
class Task;

namespace detail {

struct TaskPromiseBase {
    std::coroutine_handle<> continuation;
    bool detached = false;
    // Set when the task has produced its result: at final suspend, or
    // early through CO_TRY (the frame then stays suspended mid-body and is
    // destroyed by its owner, which runs the destructors of its locals).
    bool completed = false;

    // Hands control to whoever waits for this task, as a finished task does.
    template<typename P>
    static std::coroutine_handle<> finish(std::coroutine_handle<P> h) noexcept
    {
        auto& promise = h.promise();
        promise.completed = true;
        if (promise.detached) {
            h.destroy();
            return std::noop_coroutine();
        }
        if (promise.continuation)
            return promise.continuation;
        return std::noop_coroutine();
    }

    struct FinalAwaiter {
        bool await_ready() noexcept { return false; }
        template<typename P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept
        {
            return finish(h);
        }
        void await_resume() noexcept {}
    };

    std::suspend_always initial_suspend() noexcept { return {}; }
    FinalAwaiter final_suspend() noexcept { return {}; }
    // Kiln does not use exceptions; an escaping one is a bug.
    void unhandled_exception() noexcept { std::terminate(); }
};

template<typename T>
struct TaskPromise : TaskPromiseBase {
    std::optional<T> value;
    Task<T> get_return_object() noexcept;
    template<typename U>
    void return_value(U&& v)
    {
        value.emplace(std::forward<U>(v));
    }
};

template<>
struct TaskPromise<void> : TaskPromiseBase {
    Task<void> get_return_object() noexcept;
    void return_void() noexcept {}
};

} // namespace detail

template<typename T = void>
class [[nodiscard]] Task {
public:
    using promise_type = detail::TaskPromise<T>;
    using Handle = std::coroutine_handle<promise_type>;

    Task() = default;
    explicit Task(Handle h) : m_handle(h) {}
    Task(Task&& other) noexcept : m_handle(std::exchange(other.m_handle, {})) {}
    Task& operator=(Task&& other) noexcept
    {
        if (this != &other) {
            if (m_handle)
                m_handle.destroy();
            m_handle = std::exchange(other.m_handle, {});
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task()
    {
        if (m_handle)
            m_handle.destroy();
    }

    bool valid() const { return bool(m_handle); }
    bool done() const { return m_handle && m_handle.promise().completed; }

    struct Awaiter {
        Handle handle;
        bool await_ready() noexcept { return !handle || handle.promise().completed; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept
        {
            handle.promise().continuation = caller;
            return handle;
        }
        T await_resume()
        {
            if constexpr (!std::is_void_v<T>)
                return std::move(*handle.promise().value);
        }
    };
    Awaiter operator co_await() && noexcept { return Awaiter{m_handle}; }

    // Starts the task detached: it runs now until its first suspension and
    // frees itself when it finishes. The result is dropped.
    void start_detached() &&
    {
        Handle h = std::exchange(m_handle, {});
        h.promise().detached = true;
        h.resume();
    }

    // For drivers of the event loop: start without detaching, so the result
    // can be taken after done().
    void start() { m_handle.resume(); }
    T take_result()
    {
        if constexpr (!std::is_void_v<T>)
            return std::move(*m_handle.promise().value);
    }

private:
    Handle m_handle;
};

namespace detail {
template<typename T>
Task<T> TaskPromise<T>::get_return_object() noexcept
{
    return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept
{
    return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

// The awaitable behind CO_TRY: yields the value of an ok Result, or ends
// the awaiting Task<Result<T>> with the error.
template<typename U>
struct TryAwaiter {
    Result<U> result;
    bool await_ready() noexcept { return result.ok(); }
    template<typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept
    {
        h.promise().value.emplace(std::move(result).error());
        return TaskPromiseBase::finish(h);
    }
    U await_resume()
    {
        if constexpr (!std::is_void_v<U>)
            return std::move(result).value();
    }
};

template<typename U>
TryAwaiter<U> make_try_awaiter(Result<U>&& r)
{
    return TryAwaiter<U>{std::move(r)};
}

} // namespace detail

// Runs a task detached (fire and forget).
template<typename T>
void spawn(Task<T> task)
{
    std::move(task).start_detached();
}

} // namespace kiln

// CO_TRY(expr): inside a coroutine returning Task<Result<...>>, evaluate a
// Result (expr may contain co_await); on error the task completes with it,
// otherwise the expression yields the value.
#define CO_TRY(expr) (co_await ::kiln::detail::make_try_awaiter((expr)))
