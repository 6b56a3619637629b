// SPDX-License-Identifier: BSD-3-Clause
// Shared by the examples: bring up a Link. The remote listens on a UNIX socket path and creates the link
// (virtio device role); the host connects and joins it (virtio driver role). Or OpenAMP's PC layout, where
// the remote is OpenAMP's process 0 and the host its process 1, as in OpenAMP's demos.
//
// A failure is printed and gives a null link (or kAddrAny): the example returns from main, so that every
// destructor runs. std::exit would skip them, and the listener's is what removes the socket file.
#pragma once

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "amp/rpmsg/linux/link.hpp"

namespace example {

/// A whole-number argument in [lo, hi], or a message on stderr and false.
inline bool parse_number(const char* arg, const char* what, long lo, long hi, long& out) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(arg, &end, 10);
  if (end == arg || *end != '\0' || errno != 0 || v < lo || v > hi) {
    std::fprintf(stderr, "%s: '%s' is not a number from %ld to %ld\n", what, arg, lo, hi);
    return false;
  }
  out = v;
  return true;
}

/// Remote side: waits up to `wait` for a host on `path`, then creates the link. `buffer_size` (bytes per
/// buffer, header included; a multiple of 8 from 24 to 65544) is declared in the vdev's config space
/// (VIRTIO_RPMSG_F_BUFSZ): a host that speaks it carves its buffers to it, one that does not gets 512.
inline std::unique_ptr<amp::rpmsg::Link> remote_link(
    const std::string& path, std::chrono::seconds wait = std::chrono::seconds(30),
    std::uint32_t buffer_size = amp::rpmsg::kDefaultBufferSize) {
  auto listener = amp::metal::UnixListener::listen(path);
  if (!listener) {
    std::fprintf(stderr, "%s\n", listener.error().message.c_str());
    return nullptr;
  }
  amp::rpmsg::LinkConfig cfg;
  cfg.role = amp::rpmsg::Role::kDevice;
  cfg.buffer_size = buffer_size;
  // A client that connects and leaves without joining does not end the wait.
  auto link = amp::rpmsg::Link::accept(*listener, cfg, wait);
  if (!link) {
    if (link.error().status == amp::Status::kTimeout)
      std::fprintf(stderr, "no host connected to %s: ", path.c_str());
    std::fprintf(stderr, "%s\n", link.error().message.c_str());
    return nullptr;
  }
  return std::move(*link);
}

/// Host side: connects to `path` (retrying while the remote is not listening yet) and joins the link.
inline std::unique_ptr<amp::rpmsg::Link> host_link(const std::string& path) {
  auto conn = amp::metal::UnixSocket::connect(path, std::chrono::seconds(30));
  if (!conn) {
    std::fprintf(stderr, "%s\n", conn.error().message.c_str());
    return nullptr;
  }
  amp::rpmsg::LinkConfig cfg;
  cfg.role = amp::rpmsg::Role::kDriver;
  auto link = amp::rpmsg::Link::join(std::move(*conn), cfg);
  if (!link) {
    std::fprintf(stderr, "%s\n", link.error().message.c_str());
    return nullptr;
  }
  return std::move(*link);
}

/// OpenAMP's PC layout (POSIX shm `shm`, one byte per kick on the socket `path`): the remote (device role)
/// is process 0, which listens and writes the resource table; the host (driver role) is process 1.
inline std::unique_ptr<amp::rpmsg::Link> openamp_link(amp::rpmsg::Role role, const std::string& path,
                                                      const std::string& shm) {
  const bool remote = role == amp::rpmsg::Role::kDevice;
  auto link = amp::rpmsg::Link::openamp_linux(remote ? 0 : 1, role, std::chrono::seconds(30), path, shm);
  // Process 0 created the shm object: once the host has mapped it (the link is up), or none came, the name
  // can go, so that nothing is left in /dev/shm.
  if (remote) (void)amp::metal::shm::unlink_posix(shm);
  if (!link) {
    std::fprintf(stderr, "%s\n", link.error().message.c_str());
    return nullptr;
  }
  return std::move(*link);
}

/// Host side: waits until the remote announces `service`; returns its address (kAddrAny if it did not).
inline std::uint32_t find_service(amp::rpmsg::Link& link, std::string_view service) {
  std::mutex m;
  std::condition_variable cv;
  std::uint32_t addr = amp::rpmsg::kAddrAny;
  link.device().set_name_service_handler([&](amp::rpmsg::Device&, std::string_view name, std::uint32_t a) {
    if (name != service) return;
    std::lock_guard lock(m);
    addr = a;
    cv.notify_all();
  });
  std::unique_lock lock(m);
  if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return addr != amp::rpmsg::kAddrAny; })) {
    std::fprintf(stderr, "the remote did not announce '%.*s'\n", static_cast<int>(service.size()),
                 service.data());
  }
  lock.unlock();
  link.device().set_name_service_handler(nullptr);
  return addr;
}

/// Remote side: serves until the host hangs up.
inline void serve_until_host_leaves(amp::rpmsg::Link& link) {
  while (!link.wait_peer_gone(std::chrono::hours(1))) {
  }
}

}  // namespace example
