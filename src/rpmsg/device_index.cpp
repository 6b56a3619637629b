// SPDX-License-Identifier: BSD-3-Clause
// A Device's address index: the constructor that gives it one, and what the Device does through it. The
// only code that refers to AddressIndex's, so that an image whose Devices keep their endpoints on a list
// links none of it.
#include "amp/rpmsg/address_index.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::rpmsg {

Device::Device(std::span<AddressIndex::Slot> index) noexcept : index_(index) {
  static constexpr IndexOps kOps{indexed_find, indexed_add, indexed_remove};
  index_ops_ = &kOps;
}

Endpoint* Device::indexed_find(Device& d, std::uint32_t addr) noexcept {
  if (Endpoint* ep = d.index_.find(addr)) return ep;
  if (d.unindexed_ == 0) return nullptr;
  for (Endpoint* ep = d.endpoints_; ep != nullptr; ep = ep->next_) {
    if (!ep->indexed_ && ep->addr_ == addr) return ep;
  }
  return nullptr;
}

void Device::indexed_add(Device& d, Endpoint& ep) noexcept {
  ep.indexed_ = d.index_.insert(ep.addr_, &ep);
  if (!ep.indexed_) ++d.unindexed_;
}

void Device::indexed_remove(Device& d, Endpoint& ep) noexcept {
  if (!ep.indexed_) {
    --d.unindexed_;
    return;
  }
  (void)d.index_.erase(ep.addr_);
  ep.indexed_ = false;
  // Its room goes to one that did not fit, so that the index keeps as many as it can.
  if (d.unindexed_ == 0) return;
  for (Endpoint* e = d.endpoints_; e != nullptr; e = e->next_) {
    if (!e->indexed_) {
      e->indexed_ = d.index_.insert(e->addr_, e);
      if (e->indexed_) --d.unindexed_;
      return;
    }
  }
}

}  // namespace amp::rpmsg
