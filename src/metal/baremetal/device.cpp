// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/baremetal/device.hpp"

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/baremetal/irq.hpp"
#include "amp/metal/sync.hpp"

namespace amp::metal::baremetal {

namespace {

struct RegionSlot {
  std::string_view name;  // empty: the slot is free (registered names are never empty)
  IoRegion region;
};

constinit RegionSlot g_regions[kMaxRegions];
constinit const Device* g_devices[kMaxDevices] = {};
constinit Spinlock g_registry_lock;

/// Interrupts off on this core, then the spinlock for other cores (see device.hpp).
class RegistryLock {
 public:
  RegistryLock() noexcept { g_registry_lock.lock(); }
  ~RegistryLock() { g_registry_lock.unlock(); }
  RegistryLock(const RegistryLock&) = delete;
  RegistryLock& operator=(const RegistryLock&) = delete;

 private:
  CriticalSection section_;  // taken before the spinlock, released after it
};

/// The slot holding `name`, or nullptr. Call with the lock held.
RegionSlot* find_region_slot(std::string_view name) noexcept {
  for (RegionSlot& slot : g_regions) {
    if (!slot.name.empty() && slot.name == name) return &slot;
  }
  return nullptr;
}

/// The slot holding the device called `name`, or nullptr. Call with the lock held.
const Device** find_device_slot(std::string_view name) noexcept {
  for (const Device*& slot : g_devices) {
    if (slot != nullptr && slot->name == name) return &slot;
  }
  return nullptr;
}

}  // namespace

Status register_region(std::string_view name, const IoRegion& region) noexcept {
  if (name.empty()) return Status::kInvalidArgument;
  RegistryLock lock;
  if (find_region_slot(name) != nullptr) return Status::kAlreadyExists;
  for (RegionSlot& slot : g_regions) {
    if (slot.name.empty()) {
      slot.name = name;
      slot.region = region;
      return Status::kOk;
    }
  }
  return Status::kNoMemory;
}

Result<IoRegion> find_region(std::string_view name) noexcept {
  if (name.empty()) return fail(Status::kNotFound);
  RegistryLock lock;
  const RegionSlot* slot = find_region_slot(name);
  if (slot == nullptr) return fail(Status::kNotFound);
  return slot->region;
}

Status unregister_region(std::string_view name) noexcept {
  if (name.empty()) return Status::kNotFound;
  RegistryLock lock;
  RegionSlot* slot = find_region_slot(name);
  if (slot == nullptr) return Status::kNotFound;
  *slot = RegionSlot{};
  return Status::kOk;
}

Status register_device(const Device& device) noexcept {
  if (device.name.empty() || device.irq_vector < -1) return Status::kInvalidArgument;
  if (device.irq_vector >= 0 && static_cast<unsigned>(device.irq_vector) >= kMaxIrqVectors) {
    return Status::kOutOfRange;
  }
  RegistryLock lock;
  if (find_device_slot(device.name) != nullptr) return Status::kAlreadyExists;
  for (const Device*& slot : g_devices) {
    if (slot == nullptr) {
      slot = &device;
      return Status::kOk;
    }
  }
  return Status::kNoMemory;
}

Result<const Device*> find_device(std::string_view name) noexcept {
  if (name.empty()) return fail(Status::kNotFound);
  RegistryLock lock;
  const Device** slot = find_device_slot(name);
  if (slot == nullptr) return fail(Status::kNotFound);
  return *slot;
}

Status unregister_device(std::string_view name) noexcept {
  if (name.empty()) return Status::kNotFound;
  RegistryLock lock;
  const Device** slot = find_device_slot(name);
  if (slot == nullptr) return Status::kNotFound;
  *slot = nullptr;
  return Status::kOk;
}

Result<IoRegion> find_device_region(std::string_view name, std::size_t index) noexcept {
  auto device = find_device(name);
  if (!device) return fail(device.error());
  return (*device)->region(index);
}

}  // namespace amp::metal::baremetal
