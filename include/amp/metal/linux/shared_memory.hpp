// SPDX-License-Identifier: BSD-3-Clause
// SharedMemory: memory shared with another process, core or device, mapped into this process.
//
// One class, several providers (namespace shm): an anonymous memfd, a memfd received from someone else,
// POSIX shared memory (/dev/shm), a file (an emulator's RAM file), /dev/mem, and a UIO map. open(spec) picks
// a provider from one string, for tools and configuration files.
//
// Every mapping is MAP_SHARED and read/write. A file-backed mapping that others could shrink (POSIX shm, a
// file, an unsealed memfd) is watched by a FaultGuard: a peer that truncates the file cannot crash us, the
// mapping turns to zeros and lost() says so. Where the kernel needs a page-aligned file offset but the
// memory does not start on a page (devmem, a file offset, a UIO map's sub-page offset), the enclosing pages
// are mapped and bytes() exposes exactly the requested window. device_address() is the address byte 0 of that
// window answers to, so region() translates device addresses the peer uses.
//
// Thread-safety: a SharedMemory is immutable after creation; any number of threads may call its accessors
// concurrently. The *memory* is shared with other threads, processes or cores: access to it needs the same
// care as any shared data (IoRegion's load/store with memory orders, or your own protocol). Moving from or
// destroying a SharedMemory while another thread uses it is a data race, as for any object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "amp/metal/io_region.hpp"
#include "amp/metal/linux/device.hpp"
#include "amp/metal/linux/fault_guard.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"

namespace amp::metal {

namespace detail {
struct SharedMemoryFactory;
}  // namespace detail

/// A mapping of shared memory. Move-only; owns the mapping (munmap on destruction) and, for providers that
/// keep one, the file descriptor.
class SharedMemory {
 public:
  SharedMemory() noexcept = default;  ///< Empty: no mapping, size 0, fd -1.
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  std::span<std::byte> bytes() const noexcept { return window_; }
  std::size_t size() const noexcept { return window_.size(); }
  bool empty() const noexcept { return window_.empty(); }
  /// Device address of byte 0 of bytes().
  DeviceAddress device_address() const noexcept { return da_; }
  /// IoRegion(bytes(), device_address()).
  IoRegion region() const noexcept { return IoRegion(window_, da_); }
  /// The file descriptor, borrowed (it closes with this object); -1 when the provider keeps none (devmem).
  int fd() const noexcept { return fd_.get(); }
  /// What this is, for people: "memfd:amp-shm (65536 bytes)", "posix:/openamp.shm (524288 bytes)",
  /// "uio:uio0/map1 (4096 bytes)".
  const std::string& description() const noexcept { return description_; }

  /// Whether someone shrank the file behind the mapping and an access faulted: the mapping was replaced by
  /// zero-filled private memory (see fault_guard.hpp), so nothing crashed, but the peer's data is gone and
  /// what used the memory must end. Only file-backed mappings not sealed against shrinking can be lost.
  bool lost() const noexcept { return guard_.tripped(); }
  /// Have an eventfd signalled when the mapping is lost (-1: none); it must stay open while set.
  void notify_when_lost(int event_fd) noexcept { guard_.notify_on_trip(event_fd); }
  /// Whether the mapping is watched for that (file-backed and shrinkable by others).
  bool guarded() const noexcept { return guard_.active(); }

 private:
  friend struct detail::SharedMemoryFactory;
  void release() noexcept;

  void* map_base_ = nullptr;  // what mmap returned (page-aligned), for munmap
  std::size_t map_len_ = 0;
  std::span<std::byte> window_;
  DeviceAddress da_ = 0;
  UniqueFd fd_;
  std::string description_;
  FaultGuard guard_;
};

/// How open_posix and open_file treat an existing object.
enum class OpenMode {
  kCreate,        ///< Create it; fail with kAlreadyExists if it exists.
  kOpen,          ///< Open it; fail with kNotFound if it does not exist.
  kCreateOrOpen,  ///< Open it, creating it first if it does not exist.
};

namespace shm {

/// A new anonymous memfd of `size` bytes (MFD_CLOEXEC | MFD_ALLOW_SEALING), sealed against shrinking so that
/// a peer that receives the fd cannot make our accesses fault (SIGBUS). Share it by passing fd() over a UNIX
/// socket. `name` is for /proc and debugging only.
SysResult<SharedMemory> create_memfd(std::string_view name, std::size_t size, DeviceAddress da = 0);

/// Maps [offset, offset + size) of an open file or memory object (for example a memfd received over a UNIX
/// socket) and takes ownership of `fd`. Refuses, with kOutOfRange, an object smaller than offset + size.
/// `offset` need not be page-aligned.
SysResult<SharedMemory> map_fd(UniqueFd fd, std::size_t size, DeviceAddress da = 0, std::uint64_t offset = 0);

/// POSIX shared memory (shm_open). "openamp.shm" and "/openamp.shm" both name /dev/shm/openamp.shm. A created
/// object is sized to `size`; an opened one must be at least `size` bytes.
SysResult<SharedMemory> open_posix(std::string_view name, std::size_t size, OpenMode mode,
                                   DeviceAddress da = 0);
/// Removes a POSIX shared memory name (mappings of it stay valid). kNotFound if there is no such object,
/// kInvalidArgument for a malformed name.
Status unlink_posix(std::string_view name);

/// [offset, offset + size) of a regular file; size 0 means "to the end of the file". A created file is sized
/// to offset + size (so size 0 needs kOpen or an existing file).
SysResult<SharedMemory> open_file(const std::filesystem::path& path, std::size_t size,
                                  std::uint64_t offset = 0, OpenMode mode = OpenMode::kOpen,
                                  DeviceAddress da = 0);

/// Physical memory [phys, phys + size) through /dev/mem (O_SYNC, so uncached on most architectures). Maps the
/// enclosing pages and exposes exactly the window; device_address() is `phys`. Needs root (CAP_SYS_RAWIO),
/// and the kernel may restrict /dev/mem to I/O memory (CONFIG_STRICT_DEVMEM). Keeps no fd.
SysResult<SharedMemory> open_dev_mem(DeviceAddress phys, std::size_t size,
                                     const std::filesystem::path& dev_mem = "/dev/mem");

/// Map `map_index` of a UIO device: mmaps dev.dev_path() at offset map_index * page size and exposes the
/// map's window (starting at its sub-page `offset`). device_address() is the map's addr.
SysResult<SharedMemory> open_uio(const UioDevice& dev, unsigned map_index);

/// One string for tools and configuration:
///   memfd:NAME:SIZE
///   posix:NAME:SIZE[:create|open|create-or-open]      (default create-or-open)
///   file:PATH[:SIZE[:OFFSET]]                           (PATH without ':'; SIZE 0 or absent = whole file)
///   devmem:ADDR:SIZE                                    (roots.dev / "mem")
///   uio:UIO_NODE_OR_NAME:MAP                            (uio0, a UIO name or a platform device; MAP index or
///   name)
/// Numbers are decimal or 0x hex, with an optional K, M or G suffix (x1024...): "posix:openamp.shm:0x80000",
/// "memfd:ring:64K". A malformed spec fails with kInvalidArgument saying what is wrong and what is accepted.
SysResult<SharedMemory> open(std::string_view spec, const SysfsRoots& roots = {});

/// Parses a spec number (decimal or 0x hex, optional K/M/G suffix). kInvalidArgument or kOverflow on failure.
SysResult<std::uint64_t> parse_size(std::string_view text);

}  // namespace shm
}  // namespace amp::metal
