#include <cstring>

#include "util/result.h"

namespace kiln {

const char* error_kind_name(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::Io: return "io";
    case ErrorKind::InvalidArgument: return "invalid-argument";
    case ErrorKind::NotFound: return "not-found";
    case ErrorKind::NotSupported: return "not-supported";
    case ErrorKind::Corrupt: return "corrupt";
    case ErrorKind::NoSpace: return "no-space";
    case ErrorKind::PermissionDenied: return "permission-denied";
    case ErrorKind::Locked: return "locked";
    case ErrorKind::Busy: return "busy";
    case ErrorKind::Internal: return "internal";
    }
    return "unknown";
}

static ErrorKind kind_for_errno(int err)
{
    switch (err) {
    case ENOENT: return ErrorKind::NotFound;
    case EINVAL: return ErrorKind::InvalidArgument;
    case ENOTSUP: return ErrorKind::NotSupported;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return ErrorKind::NoSpace;
    case EACCES:
    case EPERM:
    case EROFS: return ErrorKind::PermissionDenied;
    case EAGAIN: return ErrorKind::Locked;
    case EBUSY: return ErrorKind::Busy;
    default: return ErrorKind::Io;
    }
}

Error Error::from_errno(int err, std::string message)
{
    message += ": ";
    message += std::strerror(err);
    return Error(kind_for_errno(err), std::move(message), err);
}

Error Error::with_context(const std::string& prefix) const&
{
    return Error(m_kind, prefix + ": " + m_message, m_errno);
}

Error Error::with_context(const std::string& prefix) &&
{
    m_message = prefix + ": " + m_message;
    return std::move(*this);
}

} // namespace kiln
