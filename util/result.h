// Result<T> and Error: the one way fallible code reports failure in Kiln.
// No exceptions cross module boundaries; callers use TRY / CO_TRY.
#pragma once

#include <cassert>
#include <cerrno>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace kiln {

// Stable kinds let callers branch on a failure without parsing its text.
enum class ErrorKind {
    Io,               // the OS said no (errno is set)
    InvalidArgument,  // the caller (user, option string, command) gave bad input
    NotFound,         // a named object (file, snapshot, node, device) is absent
    NotSupported,     // a valid request Kiln does not implement for this object
    Corrupt,          // on-disk or on-wire data violates its format
    NoSpace,          // out of space in an image or a host file
    PermissionDenied, // read-only node, missing permission
    Locked,           // another process holds a conflicting image lock
    Busy,             // the object is in use
    Internal,         // a Kiln bug: an invariant did not hold
};

const char* error_kind_name(ErrorKind kind);

class Error {
public:
    Error(ErrorKind kind, std::string message, int errno_value = 0)
        : m_kind(kind), m_message(std::move(message)), m_errno(errno_value)
    {
    }

    // "message: strerror(err)"; kind derived from err.
    static Error from_errno(int err, std::string message);
    static Error invalid(std::string message) { return {ErrorKind::InvalidArgument, std::move(message), EINVAL}; }
    static Error corrupt(std::string message) { return {ErrorKind::Corrupt, std::move(message), EIO}; }
    static Error not_supported(std::string message) { return {ErrorKind::NotSupported, std::move(message), ENOTSUP}; }
    static Error not_found(std::string message) { return {ErrorKind::NotFound, std::move(message), ENOENT}; }
    static Error internal(std::string message) { return {ErrorKind::Internal, std::move(message), EIO}; }

    ErrorKind kind() const { return m_kind; }
    const std::string& message() const { return m_message; }
    // Positive errno for interfaces that need one (0 if none applies).
    int errno_value() const { return m_errno; }

    // Prepends context: "prefix: message".
    Error with_context(const std::string& prefix) const&;
    Error with_context(const std::string& prefix) &&;

private:
    ErrorKind m_kind;
    std::string m_message;
    int m_errno;
};

template<typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_value(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : m_value(std::in_place_index<1>, std::move(error)) {}
    template<typename U>
        requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, Error>
                 && !std::is_same_v<std::decay_t<U>, Result>)
    Result(U&& value) : m_value(std::in_place_index<0>, T(std::forward<U>(value)))
    {
    }

    bool ok() const { return m_value.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() &
    {
        assert(ok());
        return std::get<0>(m_value);
    }
    const T& value() const&
    {
        assert(ok());
        return std::get<0>(m_value);
    }
    T&& value() &&
    {
        assert(ok());
        return std::get<0>(std::move(m_value));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }

    const Error& error() const&
    {
        assert(!ok());
        return std::get<1>(m_value);
    }
    Error&& error() &&
    {
        assert(!ok());
        return std::get<1>(std::move(m_value));
    }

private:
    std::variant<T, Error> m_value;
};

template<>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : m_error(std::move(error)) {}

    bool ok() const { return !m_error.has_value(); }
    explicit operator bool() const { return ok(); }
    void value() const { assert(ok()); }

    const Error& error() const&
    {
        assert(!ok());
        return *m_error;
    }
    Error&& error() &&
    {
        assert(!ok());
        return std::move(*m_error);
    }

private:
    std::optional<Error> m_error;
};

using VoidResult = Result<void>;

// Ok() for Result<void> returns.
inline Result<void> ok() { return {}; }

} // namespace kiln

// TRY(expr): evaluate a Result; on error return it from the enclosing
// function, otherwise yield the value. GNU statement expression (gcc, clang).
#define TRY(expr)                                                                                  \
    ({                                                                                             \
        auto&& _kiln_try_result = (expr);                                                          \
        if (!_kiln_try_result.ok())                                                                \
            return std::move(_kiln_try_result).error();                                            \
        std::move(_kiln_try_result).value();                                                       \
    })

// CO_TRY(expr) inside a coroutine returning Task<Result<...>> lives in
// util/task.h: GCC 12 cannot compile co_return inside a statement
// expression, so it is built on co_await instead.
