// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/sys_error.hpp"

#include <cstdio>
#include <cstring>

namespace amp::metal {

Status status_from_errno(int err) noexcept {
  switch (err) {
    case 0:
      return Status::kOk;
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return Status::kNotFound;
    case EACCES:
    case EPERM:
      return Status::kPermissionDenied;
    case EEXIST:
      return Status::kAlreadyExists;
    case EINVAL:
      return Status::kInvalidArgument;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      return Status::kNoMemory;
    case EBUSY:
      return Status::kBusy;
    case EAGAIN:
      return Status::kWouldBlock;
    case ETIMEDOUT:
      return Status::kTimeout;
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ENOTCONN:
    case EBADF:
      return Status::kClosed;
    case EOVERFLOW:
    case ERANGE:
      return Status::kOverflow;
    case ENOSYS:
    case EOPNOTSUPP:
      return Status::kNotSupported;
    default:
      return Status::kIoError;
  }
}

SysError errno_error(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return SysError(status_from_errno(err), std::move(msg), err);
}

std::string hex(std::uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace amp::metal
