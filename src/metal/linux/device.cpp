// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/device.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

namespace amp::metal {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kUioModuleHint = "is the uio module loaded? modprobe uio_pdrv_genirq";

/// A sysfs attribute is at most a page; anything bigger is not one.
constexpr std::size_t kMaxSysfsFile = 64 * 1024;

/// A single path component: not empty, not "." or "..", no '/' and no NUL. Keeps names from escaping roots.
bool is_component(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string_view::npos &&
         s.find('\0') == std::string_view::npos;
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

}  // namespace

SysResult<std::string> read_sysfs_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_fail("open " + path.string());
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_fail("read " + path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxSysfsFile) {
      return sys_fail(Status::kMalformed, path.string() + ": larger than a sysfs attribute can be");
    }
  }
  return out;
}

SysResult<void> write_sysfs_attr(const fs::path& path, std::string_view value) {
  const std::string what = "write '" + std::string(value) + "' to " + path.string();
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    SysError e = errno_error(what, err);
    if (err == EACCES || err == EPERM) e.message += " (writing to sysfs needs root)";
    return Unexpected<SysError>(std::move(e));
  }
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sys_fail(what);
  if (static_cast<std::size_t>(n) != value.size()) {
    return sys_fail(Status::kIoError, what + ": short write");
  }
  return {};
}

namespace {

/// A one-line attribute without its trailing newline. Refuses embedded newlines (garbage).
SysResult<std::string> read_line(const fs::path& path) {
  auto text = read_sysfs_file(path);
  if (!text) return Unexpected<SysError>(std::move(text).error());
  std::string s = std::move(*text);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (s.find('\n') != std::string::npos || s.find('\0') != std::string::npos) {
    return sys_fail(Status::kMalformed, path.string() + ": expected one line of text");
  }
  return s;
}

SysResult<std::uint64_t> read_number(const fs::path& path) {
  auto text = read_sysfs_file(path);
  if (!text) return Unexpected<SysError>(std::move(text).error());
  auto v = parse_sysfs_number(*text);
  if (!v) {
    SysError e = std::move(v).error();
    e.message = path.string() + ": " + e.message;
    return Unexpected<SysError>(std::move(e));
  }
  return *v;
}

fs::path uio_class_dir(const SysfsRoots& roots) {
  return roots.sys / "class" / "uio";
}

Unexpected<SysError> no_uio_class(const SysfsRoots& roots) {
  return sys_fail(Status::kNotFound, "no UIO devices: " + uio_class_dir(roots).string() +
                                         " does not exist (" + std::string(kUioModuleHint) + ")");
}

std::string join_nodes(const std::vector<std::string>& nodes) {
  if (nodes.empty()) return "none";
  std::string s;
  for (const auto& n : nodes) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

/// "mapN" -> N.
std::optional<unsigned> map_dir_index(std::string_view entry) {
  if (entry.size() < 4 || entry.substr(0, 3) != "map" || !is_digits(entry.substr(3))) return std::nullopt;
  auto v = parse_sysfs_number(entry.substr(3));
  if (!v || *v > 0xFFFF) return std::nullopt;
  return static_cast<unsigned>(*v);
}

}  // namespace

SysResult<std::uint64_t> parse_sysfs_number(std::string_view text) {
  std::string_view s = text;
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  const std::string shown(s);
  unsigned base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return sys_fail(Status::kMalformed, "expected a number, got '" + shown + "'");
  std::uint64_t v = 0;
  for (const char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return sys_fail(Status::kMalformed, "expected a number, got '" + shown + "'");
    }
    if (v > (~std::uint64_t{0} - d) / base) {
      return sys_fail(Status::kOverflow, "number '" + shown + "' does not fit in 64 bits");
    }
    v = v * base + d;
  }
  return v;
}

SysResult<UioDevice> find_uio(std::string_view who, const SysfsRoots& roots) {
  if (who.size() > 3 && who.substr(0, 3) == "uio" && is_digits(who.substr(3))) {
    return UioDevice::open_by_node(who, roots);
  }
  auto by_name = UioDevice::find_by_name(who, roots);
  if (by_name || by_name.error().status != Status::kNotFound) return by_name;
  // Not a UIO name: perhaps a platform device bound to a UIO driver ("3ed00000.shm").
  auto pdev = PlatformDevice::find(who, roots);
  if (!pdev) {
    SysError e = std::move(by_name).error();
    e.message += ", and no platform device of that name either";
    return Unexpected<SysError>(std::move(e));
  }
  return pdev->uio();
}

std::vector<std::string> list_uio_nodes(const SysfsRoots& roots) {
  std::vector<std::pair<std::uint64_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(uio_class_dir(roots), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() > 3 && n.compare(0, 3, "uio") == 0 && is_digits(std::string_view(n).substr(3))) {
      auto idx = parse_sysfs_number(std::string_view(n).substr(3));
      if (idx) found.emplace_back(*idx, n);
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

SysResult<UioDevice> UioDevice::open_by_node(std::string_view uio_name, const SysfsRoots& roots) {
  if (!is_component(uio_name)) {
    return sys_fail(Status::kInvalidArgument,
                    "invalid UIO node name '" + std::string(uio_name) + "' (expected a node such as uio0)");
  }
  const fs::path class_dir = uio_class_dir(roots);
  if (!path_exists(class_dir)) return no_uio_class(roots);
  const fs::path dir = class_dir / std::string(uio_name);
  if (!path_exists(dir)) {
    return sys_fail(Status::kNotFound, "UIO device '" + std::string(uio_name) + "' not found in " +
                                           class_dir.string() +
                                           " (available: " + join_nodes(list_uio_nodes(roots)) + ")");
  }

  UioDevice d;
  d.node_ = std::string(uio_name);
  d.dev_root_ = roots.dev;
  d.sys_path_ = dir;
  auto name = read_line(dir / "name");
  if (!name) return Unexpected<SysError>(std::move(name).error());
  d.name_ = std::move(*name);
  auto version = read_line(dir / "version");
  if (!version) return Unexpected<SysError>(std::move(version).error());
  d.version_ = std::move(*version);

  // A UIO device may have no memory maps at all (interrupts only): then there is no maps directory.
  const fs::path maps_dir = dir / "maps";
  std::error_code ec;
  for (fs::directory_iterator it(maps_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto index = map_dir_index(it->path().filename().string());
    if (!index) continue;
    const fs::path m = it->path();
    UioMap map;
    map.index = *index;
    auto map_name = read_line(m / "name");
    if (!map_name) return Unexpected<SysError>(std::move(map_name).error());
    map.name = std::move(*map_name);
    auto addr = read_number(m / "addr");
    if (!addr) return Unexpected<SysError>(std::move(addr).error());
    auto size = read_number(m / "size");
    if (!size) return Unexpected<SysError>(std::move(size).error());
    auto offset = read_number(m / "offset");
    if (!offset) return Unexpected<SysError>(std::move(offset).error());
    if (*size > SIZE_MAX) {
      return sys_fail(Status::kOverflow, (m / "size").string() + ": does not fit in size_t");
    }
    if (*size != 0 && *addr > ~std::uint64_t{0} - (*size - 1)) {
      return sys_fail(Status::kMalformed, (m / "addr").string() + " + size " + std::to_string(*size) +
                                              ": passes the end of the address space");
    }
    if (*offset > ~std::uint64_t{0} - *size) {
      return sys_fail(Status::kMalformed, (m / "offset").string() + " + size overflows");
    }
    map.addr = *addr;
    map.size = static_cast<std::size_t>(*size);
    map.offset = *offset;
    d.maps_.push_back(std::move(map));
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return sys_fail("list " + maps_dir.string(), ec.value());
  }
  std::sort(d.maps_.begin(), d.maps_.end(),
            [](const UioMap& a, const UioMap& b) { return a.index < b.index; });
  return d;
}

SysResult<UioDevice> UioDevice::find_by_name(std::string_view name, const SysfsRoots& roots) {
  if (!path_exists(uio_class_dir(roots))) return no_uio_class(roots);
  std::string seen;
  for (const auto& node : list_uio_nodes(roots)) {
    auto n = read_line(uio_class_dir(roots) / node / "name");
    if (!n) continue;  // A node that vanished or is unreadable cannot be the one asked for.
    if (*n == name) return open_by_node(node, roots);
    if (!seen.empty()) seen += ", ";
    seen += node + " '" + *n + "'";
  }
  return sys_fail(Status::kNotFound, "no UIO device named '" + std::string(name) + "' in " +
                                         uio_class_dir(roots).string() +
                                         " (found: " + (seen.empty() ? std::string("none") : seen) + ")");
}

SysResult<const UioMap*> UioDevice::map(std::string_view name_or_index) const {
  const bool by_index = is_digits(name_or_index);
  std::uint64_t index = 0;
  if (by_index) {
    auto v = parse_sysfs_number(name_or_index);
    if (!v) return Unexpected<SysError>(std::move(v).error());
    index = *v;
  }
  for (const auto& m : maps_) {
    if (by_index ? m.index == index : m.name == name_or_index) return &m;
  }
  std::string avail;
  for (const auto& m : maps_) {
    if (!avail.empty()) avail += ", ";
    avail += std::to_string(m.index) + " '" + m.name + "'";
  }
  return sys_fail(Status::kNotFound, "UIO device " + node_ + " ('" + name_ + "') has no map " +
                                         (by_index ? "" : "named ") + "'" + std::string(name_or_index) +
                                         "' (maps: " + (avail.empty() ? std::string("none") : avail) + ")");
}

SysResult<UniqueFd> UioDevice::open_irq() const {
  const fs::path p = dev_path();
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    SysError e = errno_error("open " + p.string(), err);
    if (err == ENOENT)
      e.message += " (the sysfs entry exists but the device node does not: is udev running?)";
    if (err == EACCES || err == EPERM) e.message += " (needs root or a udev rule granting access)";
    return Unexpected<SysError>(std::move(e));
  }
  return fd;
}

SysResult<PlatformDevice> PlatformDevice::find(std::string_view name, const SysfsRoots& roots) {
  const fs::path dir = roots.sys / "bus" / "platform" / "devices";
  if (!is_component(name)) {
    return sys_fail(Status::kInvalidArgument, "invalid platform device name '" + std::string(name) + "'");
  }
  if (!path_exists(dir / std::string(name))) {
    return sys_fail(Status::kNotFound,
                    "platform device '" + std::string(name) + "' not found in " + dir.string());
  }
  PlatformDevice d;
  d.name_ = std::string(name);
  d.roots_ = roots;
  return d;
}

fs::path PlatformDevice::sysfs_path() const {
  return roots_.sys / "bus" / "platform" / "devices" / name_;
}

std::optional<std::string> PlatformDevice::driver() const {
  std::error_code ec;
  const fs::path target = fs::read_symlink(sysfs_path() / "driver", ec);
  if (ec) return std::nullopt;
  std::string n = target.filename().string();
  if (n.empty()) return std::nullopt;
  return n;
}

SysResult<UioDevice> PlatformDevice::uio() const {
  const fs::path dir = sysfs_path() / "uio";
  std::vector<std::string> nodes;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() > 3 && n.compare(0, 3, "uio") == 0 && is_digits(std::string_view(n).substr(3))) {
      nodes.push_back(n);
    }
  }
  if (nodes.empty()) {
    const auto drv = driver();
    return sys_fail(Status::kNotFound,
                    "platform device '" + name_ + "' is not bound to a UIO driver (" +
                        (drv ? "bound to '" + *drv + "'" : std::string("no driver bound")) + ", no " +
                        dir.string() +
                        "); bind it with bind_driver(\"uio_pdrv_genirq\") or "
                        "echo uio_pdrv_genirq > driver_override");
  }
  std::sort(nodes.begin(), nodes.end());
  return UioDevice::open_by_node(nodes.front(), roots_);
}

SysResult<void> PlatformDevice::bind_driver(std::string_view driver_name) const {
  if (!is_component(driver_name)) {
    return sys_fail(Status::kInvalidArgument, "invalid driver name '" + std::string(driver_name) + "'");
  }
  const std::string drv(driver_name);
  const fs::path drv_dir = roots_.sys / "bus" / "platform" / "drivers" / drv;
  if (!path_exists(drv_dir)) {
    const bool is_uio = drv.compare(0, 3, "uio") == 0;
    std::string hint = "modprobe " + drv;
    if (drv == "uio_pdrv_genirq") hint += " of_id=generic-uio";
    return sys_fail(Status::kNotFound, std::string(is_uio ? "UIO driver '" : "driver '") + drv +
                                           "' is not loaded: " + drv_dir.string() + " does not exist (" +
                                           hint + ")");
  }
  const auto current = driver();
  if (current && *current == drv) return {};

  const fs::path dev = sysfs_path();
  if (auto r = write_sysfs_attr(dev / "driver_override", drv); !r) return r;
  if (current) {
    if (auto r = write_sysfs_attr(dev / "driver" / "unbind", name_); !r) return r;
  }
  return write_sysfs_attr(drv_dir / "bind", name_);
}

}  // namespace amp::metal
