// SPDX-License-Identifier: BSD-3-Clause
// AddressIndex: local rpmsg addresses to endpoints in O(1), for dispatching each received message without
// walking the endpoints. Open addressing over storage the caller gives (no heap: bare metal sizes it at
// compile time, Linux code at run time), with linear probing from a multiplicative hash (the addresses a
// Device allocates are consecutive; the hash spreads them, so a lookup of an address the peer made up ends
// within a few slots however the table is filled). It is never more than half full, and erase() shifts the
// entries that follow back instead of leaving tombstones, so a table with endpoints coming and going does
// not slow down. What does not fit is the caller's to keep elsewhere (Device keeps such endpoints on its
// list and walks it only while there are some).
//
// Thread-safety: none of its own; Device uses it under its lock (or on its one thread when single-threaded).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace amp::rpmsg {

class Endpoint;

class AddressIndex {
 public:
  /// One entry. An empty slot has ep == nullptr.
  struct Slot {
    std::uint32_t addr = 0;
    Endpoint* ep = nullptr;
  };

  /// Slots to give for `endpoints` indexed endpoints: twice as many, rounded up to a power of two.
  static constexpr std::size_t slots_for(std::size_t endpoints) noexcept {
    std::size_t n = 2;
    while (n < 2 * endpoints) n *= 2;
    return n;
  }

  AddressIndex() noexcept = default;
  /// Over `slots`, emptied here. Only its largest power-of-two prefix is used (at least 2 slots, else the
  /// index holds nothing).
  explicit AddressIndex(std::span<Slot> slots) noexcept { reset(slots); }
  AddressIndex(const AddressIndex&) = delete;
  AddressIndex& operator=(const AddressIndex&) = delete;

  /// Starts over on `slots` (as the constructor), forgetting every entry.
  void reset(std::span<Slot> slots) noexcept;

  /// Endpoints it can hold: half its slots.
  std::size_t capacity() const noexcept { return slots_ == nullptr ? 0 : (mask_ + 1) / 2; }
  std::size_t size() const noexcept { return size_; }

  /// Adds `addr` -> `ep` (non-null). false, changing nothing, when the index is full or holds `addr`.
  [[nodiscard]] bool insert(std::uint32_t addr, Endpoint* ep) noexcept;
  /// The endpoint at `addr`, or nullptr.
  Endpoint* find(std::uint32_t addr) const noexcept {
    if (slots_ == nullptr) return nullptr;
    for (std::size_t i = home(addr);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.ep == nullptr) return nullptr;  // never full, so a probe always meets an empty slot
      if (s.addr == addr) return s.ep;
    }
  }
  /// Removes `addr`; false when it is not there.
  bool erase(std::uint32_t addr) noexcept;
  /// Forgets every entry.
  void clear() noexcept;

 private:
  std::size_t home(std::uint32_t addr) const noexcept {
    // Fibonacci hashing: the top bits of addr * 2^32/phi.
    return static_cast<std::size_t>((addr * 0x9E3779B1U) >> shift_);
  }

  Slot* slots_ = nullptr;
  std::size_t mask_ = 0;  // slots - 1
  std::uint32_t shift_ = 32;
  std::size_t size_ = 0;
};

}  // namespace amp::rpmsg
