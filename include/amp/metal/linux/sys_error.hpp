// SPDX-License-Identifier: BSD-3-Clause
// Errors of the Linux port: a Status, the errno behind it (0 if none) and a message naming what failed
// ("open /sys/class/uio/uio0/maps/map0/size: No such file or directory"). Linux-only code may allocate, so
// the message is a std::string; the core keeps to plain Status.
// Thread-safety: plain value types.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>

#include "amp/metal/result.hpp"

namespace amp::metal {

struct SysError {
  Status status = Status::kInternal;
  int sys_errno = 0;    ///< The errno that caused it, or 0.
  std::string message;  ///< What failed, for people; never empty.

  SysError() = default;
  SysError(Status s, std::string msg, int err = 0) : status(s), sys_errno(err), message(std::move(msg)) {}
  /// From a core Status (message: the status' name).
  SysError(Status s) : status(s), message(to_string(s)) {}  // NOLINT(google-explicit-constructor)

  const std::string& what() const noexcept { return message; }
};

template <class T>
using SysResult = Expected<T, SysError>;

/// The Status that best describes an errno value (ENOENT -> kNotFound, EACCES -> kPermissionDenied...).
Status status_from_errno(int err) noexcept;

/// A SysError for a failed system call: "<context>: <strerror(err)>", with the matching Status.
SysError errno_error(std::string_view context, int err = errno);

/// Unexpected(errno_error(...)), for `return sys_fail("open " + path);`.
inline Unexpected<SysError> sys_fail(std::string_view context, int err = errno) {
  return Unexpected<SysError>(errno_error(context, err));
}
/// "0x3ed00000": addresses in messages.
std::string hex(std::uint64_t value);

/// Unexpected(SysError{status, message}).
inline Unexpected<SysError> sys_fail(Status status, std::string message) {
  return Unexpected<SysError>(SysError(status, std::move(message)));
}

}  // namespace amp::metal
