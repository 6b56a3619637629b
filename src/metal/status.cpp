// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/log_record.hpp"
#include "amp/metal/result.hpp"

// Each status and its name, once, for to_string() and log_name().
#define AMP_STATUS_NAMES(X)                 \
  X(kOk, "ok")                              \
  X(kInvalidArgument, "invalid argument")   \
  X(kOutOfRange, "out of range")            \
  X(kMisaligned, "misaligned")              \
  X(kOverflow, "arithmetic overflow")       \
  X(kNoMemory, "no memory")                 \
  X(kNotFound, "not found")                 \
  X(kAlreadyExists, "already exists")       \
  X(kBusy, "busy")                          \
  X(kWouldBlock, "would block")             \
  X(kTimeout, "timed out")                  \
  X(kClosed, "closed")                      \
  X(kBroken, "broken")                      \
  X(kMalformed, "malformed")                \
  X(kTooLarge, "too large")                 \
  X(kNotSupported, "not supported")         \
  X(kPermissionDenied, "permission denied") \
  X(kIoError, "I/O error")                  \
  X(kInternal, "internal error")

namespace amp {

const char* to_string(Status s) noexcept {
  switch (s) {
#define AMP_CASE(k, name) \
  case Status::k:         \
    return name;
    AMP_STATUS_NAMES(AMP_CASE)
#undef AMP_CASE
  }
  return "unknown status";
}

#if AMP_LOG_DICTIONARY
namespace {
#define AMP_ROW(k, name) name,
AMP_DICT_NAMES(kLogNames, 20, AMP_STATUS_NAMES(AMP_ROW) "unknown status");
#undef AMP_ROW
// The table is indexed by the value: the list must hold every value, in order.
#define AMP_VALUE(k, name) Status::k,
constexpr Status kOrder[] = {AMP_STATUS_NAMES(AMP_VALUE)};
#undef AMP_VALUE
static_assert(metal::dict::in_value_order(kOrder), "the names' list is not in the order of the values");
static_assert(sizeof kLogNames / sizeof kLogNames[0] == sizeof kOrder / sizeof kOrder[0] + 1);
}  // namespace

const char* log_name(Status s) noexcept {
  return metal::dict::name_at(kLogNames, static_cast<std::uint32_t>(s));
}
#endif

}  // namespace amp
