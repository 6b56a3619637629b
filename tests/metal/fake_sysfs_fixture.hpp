// SPDX-License-Identifier: BSD-3-Clause
// Test helpers: a temporary directory, and a fake sysfs + /dev tree inside one, for the Linux device and
// shared memory tests. Test-only; a fixture is used by one test thread.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/linux/device.hpp"

namespace amp::metal::testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/amp-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
      return;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  /// Writes `content` to `rel` (creating parent directories), replacing the file.
  void write(const std::filesystem::path& rel, std::string_view content) const {
    const auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    ASSERT_TRUE(out.good()) << "writing " << p;
  }
  /// The whole contents of `rel`, or nullopt when it does not exist.
  std::optional<std::string> read(const std::filesystem::path& rel) const {
    std::ifstream in(path_ / rel, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void mkdir(const std::filesystem::path& rel) const { std::filesystem::create_directories(path_ / rel); }

 private:
  std::filesystem::path path_;
};

/// The bytes the fake device file holds at `pos`: a pattern that differs between pages and within them.
inline std::byte fake_byte(std::uint64_t pos) {
  return static_cast<std::byte>((pos * 7 + (pos >> 12) * 13) & 0xFF);
}

struct FakeUioMapSpec {
  std::string name;
  std::string addr;    // as sysfs prints it, e.g. "0x40000000\n"
  std::string size;    // e.g. "0x1000\n"
  std::string offset;  // e.g. "0x0\n"
};

/// A fake /sys and /dev under a temporary directory: roots() points amp at it.
class FakeSysfs {
 public:
  FakeSysfs() { dir_.mkdir("dev"); }

  SysfsRoots roots() const { return SysfsRoots{dir_.path() / "sys", dir_.path() / "dev"}; }
  const TempDir& dir() const { return dir_; }

  /// /sys/class/uio/<node>/{name,version,maps/mapM/...}, and /dev/<node> as a regular file of `dev_pages`
  /// pages filled with fake_byte(position).
  void add_uio(const std::string& node, const std::string& name, const std::vector<FakeUioMapSpec>& maps,
               std::size_t dev_pages) const {
    const std::filesystem::path d = std::filesystem::path("sys/class/uio") / node;
    dir_.write(d / "name", name + "\n");
    dir_.write(d / "version", "0.1.1\n");
    for (std::size_t i = 0; i < maps.size(); ++i) {
      const auto m = d / "maps" / ("map" + std::to_string(i));
      dir_.write(m / "name", maps[i].name + "\n");
      dir_.write(m / "addr", maps[i].addr);
      dir_.write(m / "size", maps[i].size);
      dir_.write(m / "offset", maps[i].offset);
    }
    std::string data(dev_pages * page(), '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(fake_byte(i));
    dir_.write(std::filesystem::path("dev") / node, data);
  }

  /// /sys/bus/platform/devices/<name> with an empty driver_override, optionally bound (a `driver` symlink to
  /// ../../drivers/<driver>) and with a uio/<uio_node> entry.
  void add_platform_device(const std::string& name, const std::string& driver = "",
                           const std::string& uio_node = "") const {
    const auto d = std::filesystem::path("sys/bus/platform/devices") / name;
    dir_.write(d / "driver_override", "");
    if (!driver.empty()) {
      add_driver(driver);
      std::filesystem::create_directory_symlink(std::filesystem::path("../../drivers") / driver,
                                                dir_.path() / d / "driver");
    }
    if (!uio_node.empty()) dir_.mkdir(d / "uio" / uio_node);
  }

  /// /sys/bus/platform/drivers/<driver>/{bind,unbind}, empty.
  void add_driver(const std::string& driver) const {
    const auto d = std::filesystem::path("sys/bus/platform/drivers") / driver;
    if (std::filesystem::exists(dir_.path() / d)) return;
    dir_.write(d / "bind", "");
    dir_.write(d / "unbind", "");
  }

  static std::size_t page() { return static_cast<std::size_t>(::getpagesize()); }

 private:
  TempDir dir_;
};

}  // namespace amp::metal::testing
