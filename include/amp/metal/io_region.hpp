// SPDX-License-Identifier: BSD-3-Clause
// IoRegion: a bounds-checked window onto device or shared memory.
//
// A region knows where its bytes are in this process (a host virtual base and a size) and which device
// ("physical") addresses they answer to: either one contiguous range, or a table of pages. Every translation
// (offset <-> device address <-> pointer) and every access is bounds-checked and fails with kOutOfRange,
// kMisaligned or kOverflow instead of touching memory outside the window. Host pointers never go on the wire:
// two processes mapping the same memory at different addresses agree on device addresses.
//
// Thread-safety: an IoRegion is an immutable view (like std::span); any number of threads may use one
// concurrently. Concurrent access to the *bytes* is governed by the memory orders passed to load/store;
// read/write/fill are plain copies with no ordering of their own.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "amp/metal/result.hpp"

namespace amp::metal {

/// An address as a device (or the other core) sees memory.
using DeviceAddress = std::uint64_t;

/// Marks "no particular device address" where an API accepts one.
inline constexpr DeviceAddress kAnyAddress = ~DeviceAddress{0};

/// The widths that IoRegion::load/store/atomic accept.
template <class T>
concept IoWord = std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::uint16_t> ||
    std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t>;

namespace detail {

/// An atomic load of a shared-memory word. Targets without lock-free atomics of that width (64-bit on some
/// 32-bit cores) get an ordered but possibly torn access instead of a call into libatomic.
template <IoWord T>
inline T load_word(const T* p, std::memory_order order) noexcept {
  if constexpr (std::atomic_ref<T>::is_always_lock_free) {
    return std::atomic_ref<T>(*const_cast<T*>(p)).load(order);
  } else {
    T v;
    std::memcpy(&v, p, sizeof v);
    std::atomic_thread_fence(order == std::memory_order_relaxed ? order : std::memory_order_acquire);
    return v;
  }
}

template <IoWord T>
inline void store_word(T* p, T value, std::memory_order order) noexcept {
  if constexpr (std::atomic_ref<T>::is_always_lock_free) {
    std::atomic_ref<T>(*p).store(value, order);
  } else {
    std::atomic_thread_fence(order == std::memory_order_relaxed ? order : std::memory_order_release);
    std::memcpy(p, &value, sizeof value);
  }
}

}  // namespace detail

class IoRegion {
 public:
  /// An empty region: every translation and access fails with kOutOfRange.
  constexpr IoRegion() noexcept = default;

  /// `mem`, whose first byte answers to device address `da`. A region whose device range would pass the end
  /// of the 64-bit address space answers to the addresses that fit only.
  constexpr IoRegion(std::span<std::byte> mem, DeviceAddress da) noexcept
      : base_(mem.data()), size_(mem.size()), da_(da) {}

  /// `mem` split into pages of 2^page_shift bytes, page i answering to pages[i]. `pages` is borrowed and must
  /// outlive the region (and its subregions). Fails with kInvalidArgument when there are too few pages for
  /// `mem`, when page_shift is not in [1, 63], or when a page's device range wraps around. (The paged
  /// translations are in io_region_paged.cpp, reached only through what paged() installs: an image that never
  /// makes a paged region does not carry them.)
  [[nodiscard]] static Result<IoRegion> paged(std::span<std::byte> mem, std::span<const DeviceAddress> pages,
                                              unsigned page_shift) noexcept;

  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr bool is_paged() const noexcept { return pages_ != nullptr; }
  /// The whole window. For the owner of the memory; peers' data should go through the checked accessors.
  constexpr std::span<std::byte> bytes() const noexcept { return {base_, size_}; }

  /// The window [offset, offset + len) of this region, with the same device addressing.
  [[nodiscard]] Result<IoRegion> subregion(std::size_t offset, std::size_t len) const noexcept;

  // --- Translation. `len` asks that the whole range [x, x + len) be inside the region (and, for a paged
  // region, contiguous in device addresses). len 0 checks the start only, which may equal the end. ---

  /// Offset of device address `da`.
  [[nodiscard]] Result<std::size_t> offset_of(DeviceAddress da, std::size_t len = 1) const noexcept;
  /// Device address of `offset`.
  [[nodiscard]] Result<DeviceAddress> device_address_of(std::size_t offset,
                                                        std::size_t len = 1) const noexcept;
  /// Offset of a host pointer into this region.
  [[nodiscard]] Result<std::size_t> offset_of_pointer(const void* p, std::size_t len = 1) const noexcept;
  /// Host pointer to `offset`.
  [[nodiscard]] Result<std::byte*> pointer_at(std::size_t offset, std::size_t len = 1) const noexcept;
  /// Host pointer to device address `da`.
  [[nodiscard]] Result<std::byte*> pointer_of(DeviceAddress da, std::size_t len = 1) const noexcept;
  /// Device address of a host pointer into this region.
  [[nodiscard]] Result<DeviceAddress> device_address_of_pointer(const void* p,
                                                                std::size_t len = 1) const noexcept;
  /// The bytes [offset, offset + len) as a span.
  [[nodiscard]] Result<std::span<std::byte>> span_at(std::size_t offset, std::size_t len) const noexcept;

  // --- Typed access with an explicit memory order. The offset must be aligned to sizeof(T). ---

  template <IoWord T>
  [[nodiscard]] Result<T> load(std::size_t offset,
                               std::memory_order order = std::memory_order_acquire) const noexcept {
    auto p = word_at<T>(offset);
    if (!p) return fail(p.error());
    return detail::load_word(*p, order);
  }

  template <IoWord T>
  [[nodiscard]] Status store(std::size_t offset, T value,
                             std::memory_order order = std::memory_order_release) const noexcept {
    auto p = word_at<T>(offset);
    if (!p) return p.error();
    detail::store_word(*p, value, order);
    return Status::kOk;
  }

  /// An atomic reference for read-modify-write operations (fetch_add, compare_exchange...).
  template <IoWord T>
  [[nodiscard]] Result<std::atomic_ref<T>> atomic(std::size_t offset) const noexcept {
    auto p = word_at<T>(offset);
    if (!p) return fail(p.error());
    return std::atomic_ref<T>(**p);
  }

  // --- Block access. ---

  /// Copies out.size() bytes from `offset` into `out`.
  [[nodiscard]] Status read(std::size_t offset, std::span<std::byte> out) const noexcept;
  /// Copies `in` to `offset`.
  [[nodiscard]] Status write(std::size_t offset, std::span<const std::byte> in) const noexcept;
  /// Sets `len` bytes from `offset` to `value`.
  [[nodiscard]] Status fill(std::size_t offset, std::byte value, std::size_t len) const noexcept;

 private:
  /// Checks that [offset, offset + len) lies inside the region.
  constexpr Status check_range(std::size_t offset, std::size_t len) const noexcept {
    if (offset > size_ || len > size_ - offset) return Status::kOutOfRange;
    return Status::kOk;
  }

  /// The translations of a paged region, installed by paged() (see there).
  struct PagedOps {
    Result<std::size_t> (*offset_of)(const IoRegion& r, DeviceAddress da, std::size_t len) noexcept;
    Result<DeviceAddress> (*device_address_of)(const IoRegion& r, std::size_t offset,
                                               std::size_t len) noexcept;
  };
  struct Paged;  // io_region_paged.cpp
  /// Set by the first paged(): a region has pages_ only if paged() made it, so this is set wherever one is
  /// used (the region reached that thread after it was made).
  static std::atomic<const PagedOps*> paged_ops_;
  const PagedOps& paged_ops() const noexcept { return *paged_ops_.load(std::memory_order_acquire); }

  template <IoWord T>
  Result<T*> word_at(std::size_t offset) const noexcept {
    if (const Status s = check_range(offset, sizeof(T)); !ok(s)) return fail(s);
    std::byte* p = base_ + offset;
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) return fail(Status::kMisaligned);
    // Through void*: the alignment was checked above, which -Wcast-align cannot see.
    return static_cast<T*>(static_cast<void*>(p));
  }

  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  DeviceAddress da_ = 0;                  // contiguous: device address of offset 0
  const DeviceAddress* pages_ = nullptr;  // paged: the page table (of the whole original region)
  std::size_t page_count_ = 0;
  std::size_t page_origin_ = 0;  // paged: position of offset 0 within the page table's range
  unsigned page_shift_ = 0;
};

}  // namespace amp::metal
