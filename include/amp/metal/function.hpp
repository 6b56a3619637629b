// SPDX-License-Identifier: BSD-3-Clause
// InplaceFunction: a move-only callable with inline storage and no heap (std::function for the core).
//
// Any callable that fits in `Capacity` bytes (checked at compile time) can be stored: lambdas capturing a few
// references or pointers, function pointers, small functors. An empty InplaceFunction must not be called
// (check with operator bool).
// Thread-safety: a value type; one thread mutates it at a time. Calling a const one from several threads is
// as safe as the stored callable is.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace amp::metal {

template <class Signature, std::size_t Capacity = 4 * sizeof(void*)>
class InplaceFunction;

template <class R, class... Args, std::size_t Capacity>
class InplaceFunction<R(Args...), Capacity> {
 public:
  InplaceFunction() noexcept = default;
  InplaceFunction(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)

  template <
      class F, class D = std::decay_t<F>,
      std::enable_if_t<!std::is_same_v<D, InplaceFunction> && std::is_invocable_r_v<R, D&, Args...>, int> = 0>
  InplaceFunction(F&& f) noexcept {  // NOLINT(google-explicit-constructor)
    static_assert(sizeof(D) <= Capacity, "callable too large for this InplaceFunction: capture less");
    static_assert(alignof(D) <= alignof(std::max_align_t), "callable over-aligned");
    static_assert(std::is_nothrow_move_constructible_v<D>, "callable must be nothrow-movable");
    new (&storage_) D(std::forward<F>(f));
    ops_ = &kOps<D>;
  }

  InplaceFunction(InplaceFunction&& o) noexcept { take(std::move(o)); }
  InplaceFunction& operator=(InplaceFunction&& o) noexcept {
    if (this != &o) {
      reset();
      take(std::move(o));
    }
    return *this;
  }
  InplaceFunction(const InplaceFunction&) = delete;
  InplaceFunction& operator=(const InplaceFunction&) = delete;
  ~InplaceFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  R operator()(Args... args) const {
    return ops_->call(const_cast<Storage*>(&storage_), std::forward<Args>(args)...);
  }

  void reset() noexcept {
    if (ops_ != nullptr) {
      ops_->destroy(&storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct Storage {
    alignas(std::max_align_t) unsigned char bytes[Capacity];
  };
  struct Ops {
    R (*call)(Storage*, Args&&...);
    void (*move)(Storage* from, Storage* to) noexcept;
    void (*destroy)(Storage*) noexcept;
  };
  template <class D>
  static constexpr Ops kOps{[](Storage* s, Args&&... args) -> R {
                              return (*std::launder(reinterpret_cast<D*>(s)))(std::forward<Args>(args)...);
                            },
                            [](Storage* from, Storage* to) noexcept {
                              D* f = std::launder(reinterpret_cast<D*>(from));
                              new (to) D(std::move(*f));
                              f->~D();
                            },
                            [](Storage* s) noexcept { std::launder(reinterpret_cast<D*>(s))->~D(); }};

  void take(InplaceFunction&& o) noexcept {
    if (o.ops_ != nullptr) {
      o.ops_->move(&o.storage_, &storage_);
      ops_ = o.ops_;
      o.ops_ = nullptr;
    }
  }

  Storage storage_;
  const Ops* ops_ = nullptr;
};

}  // namespace amp::metal
