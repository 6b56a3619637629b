// SPDX-License-Identifier: BSD-3-Clause
// Bare-metal registries of named memory regions and devices, in fixed-size static tables (no heap).
//
// The board registers what its memory map holds at start-up (shared memory for the vrings, a mailbox's
// registers...), and drivers look it up by name. Names are compared byte by byte.
//
// Lifetimes: the registries keep std::string_view names and, for devices, a pointer to the Device itself.
// Names (and a Device with the regions its span refers to) must stay alive and unchanged while registered:
// use string literals and static objects. Regions are copied in (an IoRegion is a view; the memory it
// describes must of course stay mapped).
//
// Thread-safety: every function may be called from thread or interrupt context and from several cores;
// each runs inside a CriticalSection and under a spinlock. Do not call them from an interrupt that can
// preempt another call to them on the same core when the board has no irq_save hook.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"

#ifndef AMP_METAL_MAX_REGIONS
/// Capacity of the region registry. Define it for the whole build (every translation unit must agree).
#define AMP_METAL_MAX_REGIONS 16
#endif
#ifndef AMP_METAL_MAX_DEVICES
/// Capacity of the device registry. Define it for the whole build (every translation unit must agree).
#define AMP_METAL_MAX_DEVICES 16
#endif

namespace amp::metal::baremetal {

inline constexpr std::size_t kMaxRegions = AMP_METAL_MAX_REGIONS;
inline constexpr std::size_t kMaxDevices = AMP_METAL_MAX_DEVICES;

/// A device: its register (or memory) windows and its interrupt. A plain value; see the file comment for the
/// lifetime the registry needs.
struct Device {
  std::string_view name;
  std::span<const IoRegion> regions;
  int irq_vector = -1;  ///< -1: no interrupt. Otherwise below kMaxIrqVectors.

  /// Region `index` of the device. kOutOfRange when the device has fewer regions.
  [[nodiscard]] Result<IoRegion> region(std::size_t index) const noexcept {
    if (index >= regions.size()) return fail(Status::kOutOfRange);
    return regions[index];
  }
};

/// Registers a copy of `region` under `name` (kept by reference: see the file comment).
/// kInvalidArgument: empty name. kAlreadyExists: the name is taken. kNoMemory: all kMaxRegions slots used.
[[nodiscard]] Status register_region(std::string_view name, const IoRegion& region) noexcept;
/// kNotFound: no region of that name.
[[nodiscard]] Result<IoRegion> find_region(std::string_view name) noexcept;
/// kNotFound: no region of that name.
[[nodiscard]] Status unregister_region(std::string_view name) noexcept;

/// Registers `device`, keeping a pointer to it: the Device must outlive its registration (a static object).
/// kInvalidArgument: empty name, or irq_vector below -1. kOutOfRange: irq_vector >= kMaxIrqVectors.
/// kAlreadyExists: a device of that name is registered. kNoMemory: all kMaxDevices slots used.
[[nodiscard]] Status register_device(const Device& device) noexcept;
/// kNotFound: no device of that name.
[[nodiscard]] Result<const Device*> find_device(std::string_view name) noexcept;
/// kNotFound: no device of that name.
[[nodiscard]] Status unregister_device(std::string_view name) noexcept;
/// Region `index` of the device called `name`. kNotFound: no such device; kOutOfRange: it has fewer regions.
[[nodiscard]] Result<IoRegion> find_device_region(std::string_view name, std::size_t index) noexcept;

}  // namespace amp::metal::baremetal
