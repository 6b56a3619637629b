// SPDX-License-Identifier: BSD-3-Clause
// What a firmware for a board QEMU emulates must be, checked before any QEMU is started: an ELF executable
// of the board's class and machine, little-endian, every PT_LOAD segment inside guest RAM and out of the
// part QEMU owns (the device tree it writes at the start of RAM), an entry point in RAM, and a
// `.resource_table` inside a loaded segment that declares
//   - an rpmsg vdev with two vrings,
//   - the carveout "vdev0buffer" at a fixed address in guest RAM, overlapping no segment: the host's pool for
//     the vrings left at ANY and the rpmsg buffers,
//   - optionally a trace buffer (the host reads "amp-trace", else the first one),
//   - the vendor entry "amp doorbell" (type 128, body {u32 mode; u32 state; u32 ping; u32 pong}, see
//     baremetal_table.hpp), required for poll mode and for the watchdog: the host writes the mode (0
//     interrupt, 1 poll) before the CPU starts; an image without it is run in interrupt mode, its default,
//     and one whose entry stops after the state word has no watchdog.
// Every failure is one line that says what is wrong and what was expected.
//
// Thread-safety: plain values and a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/io_region.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/rproc/baremetal_table.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/log_dictionary.hpp"
#include "amp/rproc/resource_table.hpp"
#include "amp/rproc/resources.hpp"

namespace amp::rproc {

/// The carveout the host takes as its pool for vrings and rpmsg buffers.
inline constexpr const char* kRpmsgPoolCarveout = "vdev0buffer";
/// The trace buffer the driver reads by default.
inline constexpr const char* kAmpTraceName = "amp-trace";

/// A board QEMU emulates, as far as amp needs to know it.
struct QemuBoard {
  std::string name;           ///< "virt-a15"
  std::string binary;         ///< the QEMU program: "qemu-system-arm"
  std::string package;        ///< the Debian package that has it
  std::string machine;        ///< -M: "virt,secure=on" (secure=on adds the second UART: the doorbell)
  std::string cpu;            ///< -cpu: "cortex-a15"
  std::uint16_t elf_machine;  ///< e_machine of its firmware: EM_ARM
  unsigned elf_class;         ///< 32 or 64
  metal::DeviceAddress ram_base;
  std::size_t ram_size;
  /// Bytes at the start of RAM that QEMU owns (the device tree it writes at each reset): no image there.
  std::size_t reserved;

  /// qemu-system-arm -M virt,secure=on -cpu cortex-a15, 64 MiB at 0x40000000, the first MiB QEMU's.
  static QemuBoard virt_a15();
  /// qemu-system-arm -M mps2-an386 -cpu cortex-m4: the 16 MiB PSRAM at 0x21000000 (none of it QEMU's); the
  /// doorbell is the second CMSDK UART. The firmware sets VTOR and its stack itself (QEMU starts it at
  /// e_entry, Thumb bit set).
  static QemuBoard mps2_an386();
  /// The board of that name ("virt-a15", "mps2-an386"), if amp knows it.
  static std::optional<QemuBoard> named(std::string_view name);
  /// The names amp knows, for messages: "virt-a15 or mps2-an386".
  static const char* known_names() noexcept;
};

/// What the host takes from a checked image.
struct QemuFirmware {
  metal::DeviceAddress entry = 0;
  /// The resource table: where it is loaded, and its bytes as the image has them.
  metal::DeviceAddress table_da = 0;
  std::vector<std::byte> table;
  /// The vdev0buffer carveout.
  metal::DeviceAddress pool_da = 0;
  std::size_t pool_size = 0;
  /// The trace buffer the host reads, if there is one.
  std::optional<TraceBuffer> trace;
  /// Where the amp doorbell entry's mode word is, from the table's start, if there is one (its state word
  /// follows).
  std::optional<std::size_t> doorbell_mode_offset;
  /// Whether that entry has the watchdog's words (ping at doorbell_mode_offset + 8, pong after it).
  bool watchdog = false;
  /// The image's log formats, when it logs by dictionary (empty otherwise): its trace and console lines are
  /// rendered with them.
  LogDictionary log_dictionary;
};

/// Checks `image` for `board` (see the top of this file); `poll` requires the amp doorbell entry.
/// kNotSupported for a wrong class, machine or byte order; kOutOfRange for a segment, entry point, table or
/// carveout outside where it may be; kNotFound for a missing table, vdev or carveout; kMalformed for a table
/// that does not parse.
metal::SysResult<QemuFirmware> check_qemu_firmware(const QemuBoard& board, std::span<const std::byte> image,
                                                   bool poll);

}  // namespace amp::rproc
