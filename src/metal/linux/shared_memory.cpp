// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/shared_memory.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

namespace amp::metal {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMaxOffT = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());

std::uint64_t page_size() {
  return static_cast<std::uint64_t>(::getpagesize());
}

Unexpected<SysError> with_hint(SysError e, std::string_view hint) {
  e.message += " (";
  e.message += hint;
  e.message += ")";
  return Unexpected<SysError>(std::move(e));
}

}  // namespace

namespace detail {

struct SharedMemoryFactory {
  /// Maps [offset, offset + size) of `fd`: the enclosing pages are mapped, the window exposed. `keep` becomes
  /// the SharedMemory's fd (may be empty). `what` names the object in error messages.
  static SysResult<SharedMemory> map(int fd, std::uint64_t offset, std::size_t size, DeviceAddress da,
                                     UniqueFd keep, std::string description, const std::string& what) {
    if (size == 0) return sys_fail(Status::kInvalidArgument, what + ": cannot map 0 bytes");
    if (offset > ~std::uint64_t{0} - size) {
      return sys_fail(Status::kOverflow,
                      what + ": offset " + hex(offset) + " + size " + hex(size) + " overflows");
    }
    const std::uint64_t aligned = offset & ~(page_size() - 1);
    const std::uint64_t lead = offset - aligned;
    if (size > std::numeric_limits<std::size_t>::max() - lead) {
      return sys_fail(Status::kOverflow, what + ": mapping length overflows");
    }
    if (aligned > kMaxOffT) {
      return sys_fail(Status::kOverflow,
                      what + ": offset " + hex(offset) + " is beyond what mmap can address");
    }
    const std::size_t map_len = static_cast<std::size_t>(lead) + size;

    // Touching a page past the end of a file raises SIGBUS, so refuse a file that is too small up front.
    // Devices (/dev/mem, /dev/uioN) have no meaningful size and are left to the driver to check.
    struct stat st {};
    if (::fstat(fd, &st) != 0) return sys_fail("fstat " + what);
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) < offset + size) {
      return sys_fail(Status::kOutOfRange, what + " is " + std::to_string(st.st_size) +
                                               " bytes, too small for offset " + std::to_string(offset) +
                                               " + size " + std::to_string(size) + " = " +
                                               std::to_string(offset + size));
    }

    void* p = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(aligned));
    if (p == MAP_FAILED) {
      return sys_fail("mmap " + what + " (" + std::to_string(map_len) + " bytes at file offset " +
                      hex(aligned) + ")");
    }
    SharedMemory m;
    // A regular file (a POSIX shm object, a file, a memfd) that is not sealed against shrinking can be cut
    // short under us by whoever else has it open: watch the mapping, so that cannot crash us (SIGBUS).
    if (S_ISREG(st.st_mode)) {
      const int seals = ::fcntl(fd, F_GET_SEALS);
      if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
        auto guard = FaultGuard::watch(p, map_len);
        if (!guard) {
          ::munmap(p, map_len);
          return sys_fail(guard.error().status, what + ": " + guard.error().message);
        }
        m.guard_ = std::move(*guard);
      }
    }
    m.map_base_ = p;
    m.map_len_ = map_len;
    m.window_ = std::span<std::byte>(static_cast<std::byte*>(p) + lead, size);
    m.da_ = da;
    m.fd_ = std::move(keep);
    m.description_ = std::move(description);
    return m;
  }
};

}  // namespace detail

using detail::SharedMemoryFactory;

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : map_base_(std::exchange(o.map_base_, nullptr)),
      map_len_(std::exchange(o.map_len_, 0)),
      window_(std::exchange(o.window_, {})),
      da_(std::exchange(o.da_, 0)),
      fd_(std::move(o.fd_)),
      description_(std::move(o.description_)),
      guard_(std::move(o.guard_)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    release();
    map_base_ = std::exchange(o.map_base_, nullptr);
    map_len_ = std::exchange(o.map_len_, 0);
    window_ = std::exchange(o.window_, {});
    da_ = std::exchange(o.da_, 0);
    fd_ = std::move(o.fd_);
    description_ = std::move(o.description_);
    guard_ = std::move(o.guard_);
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  release();
}

void SharedMemory::release() noexcept {
  guard_.reset();  // before the range can be mapped again by someone else
  if (map_base_ != nullptr) ::munmap(map_base_, map_len_);
  map_base_ = nullptr;
  map_len_ = 0;
  window_ = {};
  fd_.reset();
}

namespace shm {

namespace {

/// "openamp.shm" or "/openamp.shm" -> "/openamp.shm"; rejects what shm_open would reject or misread.
SysResult<std::string> posix_name(std::string_view name) {
  std::string_view n = name;
  if (!n.empty() && n.front() == '/') n.remove_prefix(1);
  if (n.empty() || n == "." || n == ".." || n.find('/') != std::string_view::npos ||
      n.find('\0') != std::string_view::npos || n.size() > NAME_MAX) {
    return sys_fail(Status::kInvalidArgument,
                    "invalid POSIX shared memory name '" + std::string(name) +
                        "': expected one path component of 1 to " + std::to_string(NAME_MAX) +
                        " characters without '/' (a leading '/' is optional), e.g. openamp.shm");
  }
  return "/" + std::string(n);
}

std::string describe(std::string_view kind, std::string_view what, std::size_t size) {
  return std::string(kind) + ":" + std::string(what) + " (" + std::to_string(size) + " bytes)";
}

}  // namespace

SysResult<SharedMemory> create_memfd(std::string_view name, std::size_t size, DeviceAddress da) {
  const std::string n(name);
  if (n.empty() || n.find('\0') != std::string::npos || n.size() > 249) {
    return sys_fail(Status::kInvalidArgument, "invalid memfd name '" + n + "' (1 to 249 characters)");
  }
  if (size == 0) return sys_fail(Status::kInvalidArgument, "memfd " + n + ": size must not be 0");
  if (static_cast<std::uint64_t>(size) > kMaxOffT) {
    return sys_fail(Status::kOverflow, "memfd " + n + ": size " + std::to_string(size) + " is too large");
  }
  UniqueFd fd(::memfd_create(n.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return sys_fail("memfd_create " + n);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return sys_fail("ftruncate memfd " + n + " to " + std::to_string(size) + " bytes");
  }
  // A peer holding the fd could otherwise ftruncate it smaller and make our accesses fault with SIGBUS.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) != 0)
    return sys_fail("seal memfd " + n + " (F_SEAL_SHRINK)");
  const int raw = fd.get();
  return SharedMemoryFactory::map(raw, 0, size, da, std::move(fd), describe("memfd", n, size), "memfd " + n);
}

SysResult<SharedMemory> map_fd(UniqueFd fd, std::size_t size, DeviceAddress da, std::uint64_t offset) {
  if (!fd) return sys_fail(Status::kInvalidArgument, "map_fd: invalid file descriptor");
  const int raw = fd.get();
  const std::string what = "fd " + std::to_string(raw);
  return SharedMemoryFactory::map(raw, offset, size, da, std::move(fd),
                                  describe("fd", std::to_string(raw), size), what);
}

SysResult<SharedMemory> open_posix(std::string_view name, std::size_t size, OpenMode mode, DeviceAddress da) {
  auto n = posix_name(name);
  if (!n) return Unexpected<SysError>(std::move(n).error());
  const std::string& path = *n;
  const std::string what = "POSIX shared memory " + path;
  if (size == 0) return sys_fail(Status::kInvalidArgument, what + ": size must not be 0");
  if (static_cast<std::uint64_t>(size) > kMaxOffT) {
    return sys_fail(Status::kOverflow, what + ": size " + std::to_string(size) + " is too large");
  }

  constexpr int kFlags = O_RDWR | O_CLOEXEC;
  UniqueFd fd;
  bool created = false;
  if (mode != OpenMode::kOpen) {
    fd.reset(::shm_open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600));
    created = fd.valid();
    if (!fd && (errno != EEXIST || mode == OpenMode::kCreate)) {
      SysError e = errno_error("shm_open " + path + " (create)");
      if (e.sys_errno == EEXIST) return with_hint(std::move(e), "open it instead, or unlink it first");
      return Unexpected<SysError>(std::move(e));
    }
  }
  if (!fd) {
    fd.reset(::shm_open(path.c_str(), kFlags, 0));
    if (!fd) {
      SysError e = errno_error("shm_open " + path);
      if (e.sys_errno == ENOENT) {
        return with_hint(std::move(e),
                         "no such object in /dev/shm; the peer must create it first, or use create");
      }
      return Unexpected<SysError>(std::move(e));
    }
  }
  if (created && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    auto err = sys_fail("ftruncate " + path + " to " + std::to_string(size) + " bytes");
    ::shm_unlink(path.c_str());
    return err;
  }
  const int raw = fd.get();
  auto m = SharedMemoryFactory::map(raw, 0, size, da, std::move(fd), describe("posix", path, size), what);
  if (!m && created) ::shm_unlink(path.c_str());  // Leave nothing behind on failure.
  return m;
}

Status unlink_posix(std::string_view name) {
  auto n = posix_name(name);
  if (!n) return Status::kInvalidArgument;
  if (::shm_unlink(n->c_str()) != 0) return status_from_errno(errno);
  return Status::kOk;
}

SysResult<SharedMemory> open_file(const fs::path& path, std::size_t size, std::uint64_t offset, OpenMode mode,
                                  DeviceAddress da) {
  const std::string p = path.string();
  const std::string what = "file " + p;
  if (p.empty()) return sys_fail(Status::kInvalidArgument, "open_file: empty path");
  if (size == 0 && mode == OpenMode::kCreate) {
    return sys_fail(
        Status::kInvalidArgument,
        what + ": size 0 means 'the whole file', which needs an existing file (give a size to create)");
  }
  if (offset > ~std::uint64_t{0} - size || offset + size > kMaxOffT) {
    return sys_fail(Status::kOverflow, what + ": offset " + std::to_string(offset) + " + size " +
                                           std::to_string(size) + " overflows");
  }

  constexpr int kFlags = O_RDWR | O_CLOEXEC;
  UniqueFd fd;
  bool created = false;
  // Size 0 cannot size a new file, so kCreateOrOpen then only opens.
  if (mode == OpenMode::kCreate || (mode == OpenMode::kCreateOrOpen && size != 0)) {
    fd.reset(::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600));
    created = fd.valid();
    if (!fd && (errno != EEXIST || mode == OpenMode::kCreate)) return sys_fail("create " + p);
  }
  if (!fd) {
    fd.reset(::open(path.c_str(), kFlags));
    if (!fd) return sys_fail("open " + p);
  }
  auto fail_cleanup = [&](Unexpected<SysError> e) {
    if (created) ::unlink(path.c_str());
    return e;
  };
  if (created && ::ftruncate(fd.get(), static_cast<off_t>(offset + size)) != 0) {
    return fail_cleanup(sys_fail("ftruncate " + p + " to " + std::to_string(offset + size) + " bytes"));
  }
  if (size == 0) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return sys_fail("fstat " + p);
    if (!S_ISREG(st.st_mode)) {
      return sys_fail(Status::kInvalidArgument,
                      what +
                          ": size 0 means 'the whole file', but it is not a regular "
                          "file; give a size");
    }
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    if (file_size <= offset) {
      return sys_fail(Status::kOutOfRange, what + " is " + std::to_string(file_size) +
                                               " bytes: nothing to map from offset " +
                                               std::to_string(offset));
    }
    if (file_size - offset > std::numeric_limits<std::size_t>::max()) {
      return sys_fail(Status::kOverflow, what + ": too large to map");
    }
    size = static_cast<std::size_t>(file_size - offset);
  }
  const int raw = fd.get();
  std::string desc = "file:" + p + " (" + std::to_string(size) + " bytes";
  if (offset != 0) desc += " at offset " + hex(offset);
  desc += ")";
  auto m = SharedMemoryFactory::map(raw, offset, size, da, std::move(fd), std::move(desc), what);
  if (!m) return fail_cleanup(Unexpected<SysError>(std::move(m).error()));
  return m;
}

SysResult<SharedMemory> open_dev_mem(DeviceAddress phys, std::size_t size, const fs::path& dev_mem) {
  const std::string p = dev_mem.string();
  UniqueFd fd(::open(dev_mem.c_str(), O_RDWR | O_SYNC | O_CLOEXEC));
  if (!fd) {
    SysError e = errno_error("open " + p);
    if (e.sys_errno == EACCES || e.sys_errno == EPERM) {
      return with_hint(std::move(e), "needs root or CAP_SYS_RAWIO");
    }
    if (e.sys_errno == ENOENT) return with_hint(std::move(e), "the kernel needs CONFIG_DEVMEM");
    return Unexpected<SysError>(std::move(e));
  }
  const std::string window = hex(phys) + "+" + hex(size);
  // The mapping keeps /dev/mem referenced; the fd itself is of no further use.
  auto m = SharedMemoryFactory::map(fd.get(), phys, size, phys, UniqueFd(),
                                    describe("devmem", hex(phys), size), p + " [" + window + ")");
  if (!m && m.error().sys_errno == EPERM) {
    return with_hint(
        std::move(m).error(),
        "the kernel may forbid mapping RAM through /dev/mem (CONFIG_STRICT_DEVMEM, iomem=relaxed); "
        "reserve the region or use UIO");
  }
  return m;
}

SysResult<SharedMemory> open_uio(const UioDevice& dev, unsigned map_index) {
  auto map = dev.map(std::to_string(map_index));
  if (!map) return Unexpected<SysError>(std::move(map).error());
  const UioMap& mp = **map;
  const std::string label = dev.node() + "/map" + std::to_string(map_index);
  if (mp.offset >= page_size()) {
    return sys_fail(Status::kMalformed,
                    "UIO " + label + ": offset " + hex(mp.offset) + " is not within a page");
  }
  if (map_index > (kMaxOffT - page_size()) / page_size()) {
    return sys_fail(Status::kOverflow, "UIO " + label + ": map index too large");
  }
  const fs::path node = dev.dev_path();
  UniqueFd fd(::open(node.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    SysError e = errno_error("open " + node.string());
    if (e.sys_errno == ENOENT)
      return with_hint(std::move(e), "sysfs lists the device but the node is missing");
    if (e.sys_errno == EACCES || e.sys_errno == EPERM) {
      return with_hint(std::move(e), "needs root or a udev rule granting access");
    }
    return Unexpected<SysError>(std::move(e));
  }
  // UIO selects map M by the mmap offset M pages; the region itself begins `offset` bytes into that page.
  const std::uint64_t file_offset = map_index * page_size() + mp.offset;
  const int raw = fd.get();
  return SharedMemoryFactory::map(raw, file_offset, mp.size, mp.addr, std::move(fd),
                                  describe("uio", label, mp.size),
                                  "UIO " + label + " (" + node.string() + ")");
}

SysResult<std::uint64_t> parse_size(std::string_view text) {
  const std::string shown(text);
  auto bad = [&] {
    return sys_fail(
        Status::kInvalidArgument,
        "bad number '" + shown + "': expected decimal or 0x hex, optionally followed by K, M or G");
  };
  std::string_view s = text;
  unsigned shift = 0;
  if (!s.empty()) {
    switch (s.back()) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        break;
    }
    if (shift != 0) s.remove_suffix(1);
  }
  // The digits themselves: the same strict decimal/0x-hex rules as sysfs values (but no trailing newline).
  if (s.empty() || s.back() == '\n') return bad();
  auto parsed = parse_sysfs_number(s);
  if (!parsed) {
    if (parsed.error().status == Status::kOverflow) {
      return sys_fail(Status::kOverflow, "number '" + shown + "' does not fit in 64 bits");
    }
    return bad();
  }
  const std::uint64_t v = *parsed;
  if (shift != 0 && v > (~std::uint64_t{0} >> shift)) {
    return sys_fail(Status::kOverflow, "number '" + shown + "' does not fit in 64 bits");
  }
  return v << shift;
}

namespace {

constexpr std::string_view kSpecForms =
    "accepted: memfd:NAME:SIZE, posix:NAME:SIZE[:create|open|create-or-open], file:PATH[:SIZE[:OFFSET]], "
    "devmem:ADDR:SIZE, uio:UIO_NODE_OR_NAME:MAP; numbers are decimal or 0x hex with an optional K/M/G suffix";

Unexpected<SysError> bad_spec(std::string_view spec, const std::string& why) {
  return sys_fail(Status::kInvalidArgument, "bad shared memory spec '" + std::string(spec) + "': " + why +
                                                " (" + std::string(kSpecForms) + ")");
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto colon = s.find(':');
    out.push_back(s.substr(0, colon));
    if (colon == std::string_view::npos) return out;
    s.remove_prefix(colon + 1);
  }
}

/// A spec number; every failure is a bad spec (kInvalidArgument).
SysResult<std::uint64_t> spec_number(std::string_view spec, std::string_view field, std::string_view text) {
  auto v = parse_size(text);
  if (!v) return bad_spec(spec, std::string(field) + ": " + v.error().message);
  return *v;
}

SysResult<std::size_t> spec_size(std::string_view spec, std::string_view text) {
  auto v = spec_number(spec, "SIZE", text);
  if (!v) return Unexpected<SysError>(std::move(v).error());
  if (*v > std::numeric_limits<std::size_t>::max()) return bad_spec(spec, "SIZE is too large");
  return static_cast<std::size_t>(*v);
}

}  // namespace

SysResult<SharedMemory> open(std::string_view spec, const SysfsRoots& roots) {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos) return bad_spec(spec, "no KIND: prefix");
  const std::string_view kind = spec.substr(0, colon);
  const auto f = split(spec.substr(colon + 1));

  if (kind == "memfd") {
    if (f.size() != 2 || f[0].empty()) return bad_spec(spec, "memfd needs NAME:SIZE");
    auto size = spec_size(spec, f[1]);
    if (!size) return Unexpected<SysError>(std::move(size).error());
    if (*size == 0) return bad_spec(spec, "SIZE must not be 0");
    return create_memfd(f[0], *size);
  }
  if (kind == "posix") {
    if (f.size() < 2 || f.size() > 3 || f[0].empty()) return bad_spec(spec, "posix needs NAME:SIZE[:MODE]");
    auto size = spec_size(spec, f[1]);
    if (!size) return Unexpected<SysError>(std::move(size).error());
    if (*size == 0) return bad_spec(spec, "SIZE must not be 0");
    OpenMode mode = OpenMode::kCreateOrOpen;
    if (f.size() == 3) {
      if (f[2] == "create") {
        mode = OpenMode::kCreate;
      } else if (f[2] == "open") {
        mode = OpenMode::kOpen;
      } else if (f[2] == "create-or-open") {
        mode = OpenMode::kCreateOrOpen;
      } else {
        return bad_spec(spec,
                        "unknown posix mode '" + std::string(f[2]) + "' (create, open or create-or-open)");
      }
    }
    return open_posix(f[0], *size, mode);
  }
  if (kind == "file") {
    if (f.size() > 3 || f[0].empty())
      return bad_spec(spec, "file needs PATH[:SIZE[:OFFSET]] (PATH without ':')");
    std::size_t size = 0;
    std::uint64_t offset = 0;
    if (f.size() >= 2) {
      auto s = spec_size(spec, f[1]);
      if (!s) return Unexpected<SysError>(std::move(s).error());
      size = *s;
    }
    if (f.size() == 3) {
      auto o = spec_number(spec, "OFFSET", f[2]);
      if (!o) return Unexpected<SysError>(std::move(o).error());
      offset = *o;
    }
    return open_file(fs::path(std::string(f[0])), size, offset);
  }
  if (kind == "devmem") {
    if (f.size() != 2) return bad_spec(spec, "devmem needs ADDR:SIZE");
    auto addr = spec_number(spec, "ADDR", f[0]);
    if (!addr) return Unexpected<SysError>(std::move(addr).error());
    auto size = spec_size(spec, f[1]);
    if (!size) return Unexpected<SysError>(std::move(size).error());
    if (*size == 0) return bad_spec(spec, "SIZE must not be 0");
    return open_dev_mem(*addr, *size, roots.dev / "mem");
  }
  if (kind == "uio") {
    if (f.size() != 2 || f[0].empty() || f[1].empty()) return bad_spec(spec, "uio needs DEVICE:MAP");
    auto dev = find_uio(f[0], roots);
    if (!dev) return Unexpected<SysError>(std::move(dev).error());
    auto map = dev->map(f[1]);
    if (!map) return Unexpected<SysError>(std::move(map).error());
    return open_uio(*dev, (*map)->index);
  }
  return bad_spec(spec, "unknown kind '" + std::string(kind) + "'");
}

}  // namespace shm
}  // namespace amp::metal
