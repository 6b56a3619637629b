// SPDX-License-Identifier: BSD-3-Clause
// Linux device discovery: UIO devices (/sys/class/uio, /dev/uioN) and platform devices
// (/sys/bus/platform/devices), including binding a platform device to a UIO driver.
//
// Nothing here runs on its own: sysfs is only read when one of these functions is called, so a program that
// never asks for a UIO device never needs the uio module. Every root (/sys, /dev) is configurable through
// SysfsRoots so that tests can run against a fake tree in a temporary directory.
//
// Errors are SysResults whose messages name the path that was missing or malformed and, when it is knowable,
// how to fix it (which module to load, which driver to bind).
//
// Thread-safety: UioDevice and PlatformDevice are immutable snapshots of sysfs taken when they were created;
// any number of threads may read one concurrently. The free functions keep no state. Sysfs itself can change
// underneath (a device unbound, a module unloaded): a snapshot does not follow it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"

namespace amp::metal {

/// Where sysfs and the device nodes live. Defaults are the real ones.
struct SysfsRoots {
  std::filesystem::path sys = "/sys";
  std::filesystem::path dev = "/dev";
};

/// One memory map of a UIO device (/sys/class/uio/uioN/maps/mapM).
struct UioMap {
  unsigned index = 0;      ///< M: the map is mmapped at offset M * page size of /dev/uioN.
  std::string name;        ///< The map's name (may be empty).
  std::uint64_t addr = 0;  ///< Physical (device) address of the region's first byte.
  std::size_t size = 0;    ///< Size of the region in bytes.
  std::uint64_t offset =
      0;  ///< Offset of the region within its first page (addr % page size for physical maps).
};

/// A /dev/uioN node with its maps, as read from /sys/class/uio/uioN when it was opened.
class UioDevice {
 public:
  /// Reads /sys/class/uio/<uio_name>/{name,version,maps/mapM/{name,addr,size,offset}}. uio_name is "uio0".
  static SysResult<UioDevice> open_by_node(std::string_view uio_name, const SysfsRoots& roots = {});
  /// The UIO device whose `name` file equals `name` (the kernel sets it to the driver's or device's name).
  /// When several match, the lowest-numbered node wins.
  static SysResult<UioDevice> find_by_name(std::string_view name, const SysfsRoots& roots = {});

  const std::string& node() const noexcept { return node_; }            ///< "uio0"
  const std::string& name() const noexcept { return name_; }            ///< Contents of `name`.
  const std::string& version() const noexcept { return version_; }      ///< Contents of `version`.
  std::filesystem::path dev_path() const { return dev_root_ / node_; }  ///< roots.dev / "uio0"
  std::filesystem::path sysfs_path() const { return sys_path_; }        ///< roots.sys / "class/uio/uio0"
  /// The maps, ordered by index.
  std::span<const UioMap> maps() const noexcept { return maps_; }
  /// A map by index ("1") or by name ("shm"); a string of digits is an index.
  SysResult<const UioMap*> map(std::string_view name_or_index) const;
  /// Opens dev_path() O_RDWR | O_CLOEXEC for interrupts: reading 4 bytes blocks until an interrupt and
  /// returns the interrupt count; writing the uint32 1 enables the interrupt, 0 disables it.
  SysResult<UniqueFd> open_irq() const;

 private:
  UioDevice() = default;

  std::string node_;
  std::string name_;
  std::string version_;
  std::filesystem::path dev_root_;
  std::filesystem::path sys_path_;
  std::vector<UioMap> maps_;
};

/// A platform device (/sys/bus/platform/devices/<name>), for example a device-tree node "3ed00000.shm".
class PlatformDevice {
 public:
  static SysResult<PlatformDevice> find(std::string_view name, const SysfsRoots& roots = {});

  const std::string& name() const noexcept { return name_; }
  std::filesystem::path sysfs_path() const;
  /// The driver the device is bound to now (basename of the `driver` symlink), if any. Reads sysfs.
  std::optional<std::string> driver() const;
  /// The UIO device under <device>/uio/. kNotFound, saying so, when the device is not bound to a UIO driver.
  SysResult<UioDevice> uio() const;
  /// Binds the device to `driver`: writes the driver name to <device>/driver_override; if the device is bound
  /// to another driver, writes the device name to <device>/driver/unbind; then writes the device name to
  /// /sys/bus/platform/drivers/<driver>/bind. Already bound to `driver`: does nothing. Needs root.
  SysResult<void> bind_driver(std::string_view driver = "uio_pdrv_genirq") const;

 private:
  PlatformDevice() = default;

  std::string name_;
  SysfsRoots roots_;
};

/// A UIO device by node ("uio0"), by the contents of its `name` file, or by the platform device bound to
/// it ("3ed00000.shm").
SysResult<UioDevice> find_uio(std::string_view node_name_or_device, const SysfsRoots& roots = {});

/// The UIO nodes under /sys/class/uio ("uio0", "uio1", ... in numeric order); empty when there are none or
/// the directory does not exist.
std::vector<std::string> list_uio_nodes(const SysfsRoots& roots = {});

/// A sysfs attribute's whole text, as read (at most what an attribute can hold: larger is kMalformed).
SysResult<std::string> read_sysfs_file(const std::filesystem::path& path);

/// Writes `value` to an existing sysfs attribute with one write(2), as sysfs expects; a permission error says
/// that writing to sysfs needs root.
SysResult<void> write_sysfs_attr(const std::filesystem::path& path, std::string_view value);

/// Parses a sysfs number such as "0x3ed00000\n": hexadecimal with a 0x prefix (or decimal without one),
/// at most one trailing newline, nothing else. Fails with kMalformed on garbage and kOverflow on overflow.
SysResult<std::uint64_t> parse_sysfs_number(std::string_view text);

}  // namespace amp::metal
