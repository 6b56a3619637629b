// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/address_index.hpp"

namespace amp::rpmsg {

void AddressIndex::reset(std::span<Slot> slots) noexcept {
  std::size_t n = 2;
  std::uint32_t bits = 1;
  if (slots.size() < n) {
    slots_ = nullptr;
    mask_ = 0;
    shift_ = 32;
    size_ = 0;
    return;
  }
  while (n * 2 <= slots.size() && bits < 31) {
    n *= 2;
    ++bits;
  }
  slots_ = slots.data();
  mask_ = n - 1;
  shift_ = 32 - bits;
  clear();
}

void AddressIndex::clear() noexcept {
  if (slots_ != nullptr) {
    for (std::size_t i = 0; i <= mask_; ++i) slots_[i] = Slot{};
  }
  size_ = 0;
}

bool AddressIndex::insert(std::uint32_t addr, Endpoint* ep) noexcept {
  if (ep == nullptr || size_ >= capacity()) return false;
  std::size_t i = home(addr);
  for (; slots_[i].ep != nullptr; i = (i + 1) & mask_) {
    if (slots_[i].addr == addr) return false;
  }
  slots_[i] = Slot{addr, ep};
  ++size_;
  return true;
}

bool AddressIndex::erase(std::uint32_t addr) noexcept {
  if (slots_ == nullptr) return false;
  std::size_t hole = home(addr);
  for (;; hole = (hole + 1) & mask_) {
    if (slots_[hole].ep == nullptr) return false;
    if (slots_[hole].addr == addr) break;
  }
  // Backward shift: each entry after the hole that would not be found past it moves into it.
  for (std::size_t j = (hole + 1) & mask_; slots_[j].ep != nullptr; j = (j + 1) & mask_) {
    const std::size_t want = home(slots_[j].addr);
    // j's entry may fill the hole when its home is not in (hole, j], cyclically.
    const bool stays = hole <= j ? (hole < want && want <= j) : (hole < want || want <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = Slot{};
  --size_;
  return true;
}

}  // namespace amp::rpmsg
