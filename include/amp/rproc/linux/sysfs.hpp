// SPDX-License-Identifier: BSD-3-Clause
// The Linux kernel's remoteproc, driven through sysfs: /sys/class/remoteproc/remoteprocN/{name, firmware,
// state, recovery}. The kernel loads and starts the firmware; amp can then run virtio/rpmsg in userspace over
// the remote's memory (UIO maps). Every root is configurable so that tests run against a fake tree.
//
// Thread-safety: a SysfsRemoteproc is a value (paths); its methods are plain file reads and writes, safe to
// call from several threads (the kernel serialises them), though concurrent state changes race as they would
// from a shell.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/rproc/lifecycle.hpp"

namespace amp::rproc {

struct SysfsRoots {
  std::filesystem::path sys = "/sys";
  /// Where the kernel looks for firmware files (its default search path; a custom one is in
  /// /sys/module/firmware_class/parameters/path).
  std::filesystem::path firmware_dir = "/lib/firmware";
};

/// The kernel's state names mapped to ours: offline, running, crashed, attached, detached; "suspended",
/// "deleted" and anything else are kNotSupported.
metal::SysResult<State> parse_kernel_state(std::string_view text);

class SysfsRemoteproc {
 public:
  /// By node ("remoteproc0") or by the contents of its `name` file (e.g. "r5f_0"). A missing class
  /// directory is a clear error (no remoteproc driver loaded).
  static metal::SysResult<SysfsRemoteproc> open(std::string_view node_or_name, const SysfsRoots& roots = {});
  /// Whether the remoteproc class exists at all (a clear error if no remoteproc driver is loaded).
  static metal::SysResult<void> available(const SysfsRoots& roots = {});
  /// The remoteproc nodes present, in numeric order.
  static std::vector<std::string> list(const SysfsRoots& roots = {});

  const std::string& node() const noexcept { return node_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  metal::SysResult<std::string> name() const;
  metal::SysResult<State> state() const;
  metal::SysResult<std::string> firmware() const;

  /// Names the firmware file (relative to the firmware search path). The kernel allows it while offline.
  metal::SysResult<void> set_firmware(std::string_view file_name) const;
  /// Writes `image` into the firmware directory as `file_name` and names it.
  metal::SysResult<void> install_firmware(std::string_view file_name, std::span<const std::byte> image) const;
  metal::SysResult<void> start() const;
  metal::SysResult<void> stop() const;
  metal::SysResult<void> detach() const;
  metal::SysResult<void> set_recovery(bool enabled) const;

 private:
  metal::SysResult<std::string> read_attr(std::string_view attr) const;
  metal::SysResult<void> write_attr(std::string_view attr, std::string_view value) const;

  std::string node_;
  std::filesystem::path path_;
  std::filesystem::path firmware_dir_;
};

/// rproc::Driver over the kernel's remoteproc: load installs the image as `amp-<node>.elf` and names it,
/// start/stop/detach write the state file, attach accepts a remote the kernel reports running or attached.
/// Failures are logged with the kernel's or the file system's message and returned as a Status.
class SysfsDriver final : public Driver {
 public:
  explicit SysfsDriver(SysfsRemoteproc rproc) : rproc_(std::move(rproc)) {}
  Status load(std::span<const std::byte> firmware) noexcept override;
  Status start() noexcept override;
  Status stop() noexcept override;
  Status attach() noexcept override;
  Status detach() noexcept override;
  const SysfsRemoteproc& remoteproc() const noexcept { return rproc_; }
  /// The message of the last failure ("" if none).
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  Status report(const metal::SysResult<void>& r) noexcept;
  SysfsRemoteproc rproc_;
  std::string last_error_;
};

}  // namespace amp::rproc
