// SPDX-License-Identifier: BSD-3-Clause
// Errors as values: amp::Status and amp::Expected<T, E>.
//
// The core is built without exceptions, so every fallible operation returns either a Status (for operations
// without a value) or an Expected<T> (a value or a Status). Both are [[nodiscard]]. Expected mirrors the
// C++23 std::expected interface closely enough that code can move to it later. Thread-safety: plain value
// types.
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace amp {

/// Outcome of an operation. kOk is the only success value. The numbers cross ampd's client protocol
/// (docs/ampd-protocol.md): add new values at the end only.
enum class [[nodiscard]] Status : std::int32_t{
    kOk = 0,
    kInvalidArgument,   ///< A caller-supplied argument is wrong.
    kOutOfRange,        ///< An address, offset or length lies outside the memory it refers to.
    kMisaligned,        ///< An address is not aligned for the requested access.
    kOverflow,          ///< An arithmetic computation on sizes or addresses overflowed.
    kNoMemory,          ///< A fixed-capacity table or pool is full.
    kNotFound,          ///< A named thing (device, map, endpoint, source...) does not exist.
    kAlreadyExists,     ///< The thing to create exists already.
    kBusy,              ///< The resource is in use.
    kWouldBlock,        ///< A non-blocking operation could not proceed now.
    kTimeout,           ///< A blocking operation ran out of time.
    kClosed,            ///< The peer or the object is gone or shut down.
    kBroken,            ///< The peer violated the protocol; the object refuses further use.
    kMalformed,         ///< Input data (a file, a message, shared memory) is malformed.
    kTooLarge,          ///< A message or request exceeds a size limit (nothing was truncated).
    kNotSupported,      ///< The operation is not available on this platform or configuration.
    kPermissionDenied,  ///< The operating system refused access.
    kIoError,           ///< A system call failed for another reason; see the errno if one is attached.
    kInternal,          ///< A broken invariant inside amp (a bug).
};

/// A short, static, human-readable name for a Status ("out of range"). Never null.
const char* to_string(Status s) noexcept;
/// The name of `s` for a log line's argument: to_string(s), or, where the core is built with dictionary
/// logging (AMP_LOG_DICTIONARY=1, metal/log_record.hpp), the name's entry in the image's log dictionary,
/// which the image does not load: only a log record can carry it, and the host renders it.
#if defined(AMP_LOG_DICTIONARY) && AMP_LOG_DICTIONARY
const char* log_name(Status s) noexcept;
#else
inline const char* log_name(Status s) noexcept {
  return to_string(s);
}
#endif

constexpr bool ok(Status s) noexcept {
  return s == Status::kOk;
}

/// Wrapper that marks a value as an error when constructing an Expected.
template <class E>
class Unexpected {
 public:
  constexpr explicit Unexpected(E e) : error_(std::move(e)) {}
  constexpr const E& error() const& noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};

template <class E>
constexpr Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(e));
}

namespace detail {
/// Called when value() or error() is used on the wrong alternative: a precondition violation, never an error
/// path. With no exceptions in the core, the program stops here.
[[noreturn]] inline void bad_expected_access() noexcept {
  __builtin_trap();
}
}  // namespace detail

/// A T or an E (by default a Status). T may be void.
template <class T, class E = Status>
class [[nodiscard]] Expected {
 public:
  using value_type = T;
  using error_type = E;

  template <class U = T, std::enable_if_t<std::is_default_constructible_v<U>, int> = 0>
  constexpr Expected() : has_(true) {
    new (&val_) T();
  }
  template <class U = T, std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                              !std::is_same_v<std::remove_cvref_t<U>, Expected> &&
                                              !std::is_same_v<std::remove_cvref_t<U>, Unexpected<E>>,
                                          int> = 0>
  constexpr Expected(U&& v) : has_(true) {  // NOLINT(google-explicit-constructor)
    new (&val_) T(std::forward<U>(v));
  }
  template <class G, std::enable_if_t<std::is_constructible_v<E, const G&>, int> = 0>
  constexpr Expected(const Unexpected<G>& u) : has_(false) {  // NOLINT(google-explicit-constructor)
    new (&err_) E(u.error());
  }
  template <class G, std::enable_if_t<std::is_constructible_v<E, G&&>, int> = 0>
  constexpr Expected(Unexpected<G>&& u) : has_(false) {  // NOLINT(google-explicit-constructor)
    new (&err_) E(std::move(u).error());
  }

  Expected(const Expected& o) : has_(o.has_) {
    if (has_) {
      new (&val_) T(o.val_);
    } else {
      new (&err_) E(o.err_);
    }
  }
  Expected(Expected&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : has_(o.has_) {
    if (has_) {
      new (&val_) T(std::move(o.val_));
    } else {
      new (&err_) E(std::move(o.err_));
    }
  }
  Expected& operator=(const Expected& o) {
    if (this != &o) {
      destroy();
      construct_from(o);
    }
    return *this;
  }
  Expected& operator=(Expected&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      destroy();
      construct_from(std::move(o));
    }
    return *this;
  }
  ~Expected() { destroy(); }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }

  T& value() & {
    if (!has_) detail::bad_expected_access();
    return val_;
  }
  const T& value() const& {
    if (!has_) detail::bad_expected_access();
    return val_;
  }
  T&& value() && {
    if (!has_) detail::bad_expected_access();
    return std::move(val_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& {
    if (has_) detail::bad_expected_access();
    return err_;
  }
  E&& error() && {
    if (has_) detail::bad_expected_access();
    return std::move(err_);
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_ ? val_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void destroy() {
    if (has_) {
      val_.~T();
    } else {
      err_.~E();
    }
  }
  template <class O>
  void construct_from(O&& o) {
    has_ = o.has_;
    if (has_) {
      new (&val_) T(std::forward<O>(o).val_);
    } else {
      new (&err_) E(std::forward<O>(o).err_);
    }
  }

  union {
    T val_;
    E err_;
  };
  bool has_;
};

/// Expected<void, E>: success, or an error.
template <class E>
class [[nodiscard]] Expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  constexpr Expected() = default;
  template <class G, std::enable_if_t<std::is_constructible_v<E, const G&>, int> = 0>
  constexpr Expected(const Unexpected<G>& u) : has_(false), err_(u.error()) {}  // NOLINT
  template <class G, std::enable_if_t<std::is_constructible_v<E, G&&>, int> = 0>
  constexpr Expected(Unexpected<G>&& u) : has_(false), err_(std::move(u).error()) {}  // NOLINT

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  void value() const {
    if (!has_) detail::bad_expected_access();
  }
  const E& error() const& {
    if (has_) detail::bad_expected_access();
    return err_;
  }

 private:
  bool has_ = true;
  E err_{};
};

/// The core's result type: a T, or a Status other than kOk.
template <class T>
using Result = Expected<T, Status>;

/// Turns a Status into an error Expected. Precondition: s != Status::kOk.
constexpr Unexpected<Status> fail(Status s) {
  return Unexpected<Status>(s);
}

}  // namespace amp

/// Returns early from the enclosing function (which returns Status) when `expr` (a Status) is not kOk.
#define AMP_RETURN_IF_ERROR(expr)                                               \
  do {                                                                          \
    if (const ::amp::Status amp_s_ = (expr); !::amp::ok(amp_s_)) return amp_s_; \
  } while (0)
