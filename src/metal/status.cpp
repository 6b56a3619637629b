// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/result.hpp"

namespace amp {

const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kInvalidArgument:
      return "invalid argument";
    case Status::kOutOfRange:
      return "out of range";
    case Status::kMisaligned:
      return "misaligned";
    case Status::kOverflow:
      return "arithmetic overflow";
    case Status::kNoMemory:
      return "no memory";
    case Status::kNotFound:
      return "not found";
    case Status::kAlreadyExists:
      return "already exists";
    case Status::kBusy:
      return "busy";
    case Status::kWouldBlock:
      return "would block";
    case Status::kTimeout:
      return "timed out";
    case Status::kClosed:
      return "closed";
    case Status::kBroken:
      return "broken";
    case Status::kMalformed:
      return "malformed";
    case Status::kTooLarge:
      return "too large";
    case Status::kNotSupported:
      return "not supported";
    case Status::kPermissionDenied:
      return "permission denied";
    case Status::kIoError:
      return "I/O error";
    case Status::kInternal:
      return "internal error";
  }
  return "unknown status";
}

}  // namespace amp
