// SPDX-License-Identifier: BSD-3-Clause
// The resource table of a bare-metal rpmsg firmware, built at compile time and placed in `.resource_table`:
//
//   entry 0  RSC_VDEV      the rpmsg vdev with two vrings (see firmware_table.hpp)
//   entry 1  RSC_CARVEOUT  the shared memory the host takes its vrings (at ANY) and rpmsg buffers from
//   entry 2  RSC_TRACE     a text buffer the firmware logs into
//   entry 3  vendor 128    amp's doorbell: { u32 mode; u32 state; u32 ping; u32 pong; }: mode is
//                          kDoorbellModeInterrupt, or kDoorbellModePoll written by the host before it starts
//                          the remote; state is the firmware's (kDoorbellStateIdle in the image, see below);
//                          ping and pong are the watchdog's (below)
//
// Byte for byte Linux's struct resource_table / fw_rsc_* (include/linux/remoteproc.h), as OpenAMP writes
// them; every field is a little-endian word. Freestanding: constants and constexpr functions only.
//
//   AMP_RPROC_RESOURCE_TABLE amp::rproc::BaremetalFirmwareTable amp_resource_table =
//       amp::rproc::baremetal_firmware_table({.carveout_da = 0x40800000, .carveout_len = 0x100000,
//                                             .trace_da = 0x407ff000, .trace_len = 0x1000});
//
// The host writes into the loaded copy (vring addresses and notify ids, the vdev status, the doorbell mode):
// a firmware declares its table without `const` and reads it through volatile or atomic accesses (an
// IoRegion over it), never as the constant the compiler saw.
//
// Thread-safety: plain data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "amp/rproc/firmware_table.hpp"
#include "amp/rproc/resource_table.hpp"

namespace amp::rproc {

/// The vendor entry type of amp's doorbell (the first vendor type).
inline constexpr std::uint32_t kRscVendorDoorbell = kRscVendorStart;
/// Doorbell modes (FwRscDoorbell::mode).
inline constexpr std::uint32_t kDoorbellModeInterrupt = 0;  ///< Kicks both ways (the image's default).
inline constexpr std::uint32_t kDoorbellModePoll = 1;       ///< No kicks: both sides poll the rings.
/// Firmware states (FwRscDoorbell::state), written by the firmware only. Idle: it does not use the vrings
/// (at boot, and once it has let go of them after a vdev reset: a host waits for this before it sets
/// DRIVER_OK again). Serving: it runs a session over the vrings it read after DRIVER_OK. A host that puts the
/// image's table back clears it, which a serving firmware takes for the end of its session.
inline constexpr std::uint32_t kDoorbellStateIdle = 0;
inline constexpr std::uint32_t kDoorbellStateServing = 1;
/// The watchdog (FwRscDoorbell::ping and pong): the host writes a new number into ping and rings the
/// doorbell; the firmware's main loop copies ping into pong each time round (in every state, served or
/// not). A firmware whose pong stays behind for the host's watchdog period has stopped answering: a crash.
/// An entry whose body is 8 bytes (mode and state only) has no watchdog.
inline constexpr std::uint32_t kDoorbellBodyWithWatchdog = 16;

/// struct fw_rsc_carveout with its type word (also fw_rsc_devmem's layout).
struct FwRscCarveout {
  std::uint32_t type;
  std::uint32_t da;
  std::uint32_t pa;
  std::uint32_t len;
  std::uint32_t flags;
  std::uint32_t reserved;
  char name[kRscNameSize];
};

/// struct fw_rsc_trace with its type word.
struct FwRscTrace {
  std::uint32_t type;
  std::uint32_t da;
  std::uint32_t len;
  std::uint32_t reserved;
  char name[kRscNameSize];
};

/// amp's doorbell vendor entry with its type word.
struct FwRscDoorbell {
  std::uint32_t type;
  std::uint32_t mode;
  std::uint32_t state;
  std::uint32_t ping;  ///< the host's
  std::uint32_t pong;  ///< the firmware's
};

struct BaremetalFirmwareTable {
  std::uint32_t ver;
  std::uint32_t num;
  std::uint32_t reserved[2];
  std::uint32_t offset[4];
  FwRscVdev2 vdev;
  FwRscCarveout carveout;
  FwRscTrace trace;
  FwRscDoorbell doorbell;
};

// The kernel's layouts (sizes include the type word), and the offsets resource_table.hpp reads.
static_assert(sizeof(FwRscCarveout) == kRscCarveoutSize);
static_assert(offsetof(FwRscCarveout, da) - 4 == rsc::kCarveoutDa);
static_assert(offsetof(FwRscCarveout, pa) - 4 == rsc::kCarveoutPa);
static_assert(offsetof(FwRscCarveout, len) - 4 == rsc::kCarveoutLen);
static_assert(offsetof(FwRscCarveout, flags) - 4 == rsc::kCarveoutFlags);
static_assert(offsetof(FwRscCarveout, name) - 4 == rsc::kCarveoutName);
static_assert(sizeof(FwRscTrace) == kRscTraceSize);
static_assert(offsetof(FwRscTrace, da) - 4 == rsc::kTraceDa);
static_assert(offsetof(FwRscTrace, len) - 4 == rsc::kTraceLen);
static_assert(offsetof(FwRscTrace, name) - 4 == rsc::kTraceName);
static_assert(sizeof(FwRscDoorbell) == 4 + kDoorbellBodyWithWatchdog);
// No padding anywhere: header and four offsets (32 bytes), then the entries back to back, each 4-aligned
// (the vdev 8-aligned, as OpenAMP's tables have it).
static_assert(offsetof(BaremetalFirmwareTable, vdev) == 32);
static_assert(offsetof(BaremetalFirmwareTable, carveout) == 32 + sizeof(FwRscVdev2));
static_assert(offsetof(BaremetalFirmwareTable, trace) == 32 + sizeof(FwRscVdev2) + sizeof(FwRscCarveout));
static_assert(offsetof(BaremetalFirmwareTable, doorbell) ==
              32 + sizeof(FwRscVdev2) + sizeof(FwRscCarveout) + sizeof(FwRscTrace));
static_assert(sizeof(BaremetalFirmwareTable) ==
              32 + sizeof(FwRscVdev2) + sizeof(FwRscCarveout) + sizeof(FwRscTrace) + sizeof(FwRscDoorbell));
static_assert(sizeof(BaremetalFirmwareTable) == 224);

struct BaremetalTableSpec {
  /// The vdev: ring sizes, alignment, addresses (ANY: the host places them) and offered features.
  RpmsgFirmwareTableSpec vdev{};
  /// The shared-memory carveout; pa defaults to da (identity mapping).
  std::string_view carveout_name = "vdev0buffer";
  std::uint32_t carveout_da = kRscAddrAny;
  std::uint32_t carveout_pa = kRscAddrAny;  ///< kRscAddrAny here: the same as carveout_da.
  std::uint32_t carveout_len = 0;
  std::uint32_t carveout_flags = 0;
  /// The trace buffer.
  std::string_view trace_name = "amp-trace";
  std::uint32_t trace_da = 0;
  std::uint32_t trace_len = 0;
  /// The doorbell mode in the image.
  std::uint32_t doorbell_mode = kDoorbellModeInterrupt;
};

namespace detail {
// Not constexpr on purpose: reaching it makes a constant-evaluated table ill-formed (a compile error), and
// a table built at run time fails to link. Names must leave room for their NUL.
void baremetal_table_name_too_long() noexcept;

template <std::size_t N>
constexpr void copy_name(char (&out)[N], std::string_view name) noexcept {
  if (name.size() >= N) baremetal_table_name_too_long();
  for (std::size_t i = 0; i < N; ++i) out[i] = i < name.size() ? name[i] : '\0';
}
}  // namespace detail

constexpr BaremetalFirmwareTable baremetal_firmware_table(const BaremetalTableSpec& spec) noexcept {
  BaremetalFirmwareTable t{};
  const RpmsgFirmwareTable rpmsg = rpmsg_firmware_table(spec.vdev);
  t.ver = 1;
  t.num = 4;
  t.offset[0] = offsetof(BaremetalFirmwareTable, vdev);
  t.offset[1] = offsetof(BaremetalFirmwareTable, carveout);
  t.offset[2] = offsetof(BaremetalFirmwareTable, trace);
  t.offset[3] = offsetof(BaremetalFirmwareTable, doorbell);
  t.vdev = rpmsg.vdev;
  t.carveout.type = kRscCarveout;
  t.carveout.da = spec.carveout_da;
  t.carveout.pa = spec.carveout_pa == kRscAddrAny ? spec.carveout_da : spec.carveout_pa;
  t.carveout.len = spec.carveout_len;
  t.carveout.flags = spec.carveout_flags;
  detail::copy_name(t.carveout.name, spec.carveout_name);
  t.trace.type = kRscTrace;
  t.trace.da = spec.trace_da;
  t.trace.len = spec.trace_len;
  detail::copy_name(t.trace.name, spec.trace_name);
  t.doorbell.type = kRscVendorDoorbell;
  t.doorbell.mode = spec.doorbell_mode;
  return t;
}

}  // namespace amp::rproc
