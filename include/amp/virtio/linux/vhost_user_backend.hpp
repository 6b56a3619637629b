// SPDX-License-Identifier: BSD-3-Clause
// The backend side of one vhost-user connection: what the front end (User-mode Linux's virtio_uml, QEMU...)
// negotiates and sets up, message by message, checked as it comes: features, the memory table (each region's
// fd mapped, at its guest addresses), and per queue its size, ring addresses (translated into guest
// addresses and required to lie inside the mapped memory), kick and call descriptors, and whether it is
// enabled. What runs over the queues (rpmsg::Device in the device role) is the caller's: it reads the queues'
// placement and memory from here once they are enabled.
//
// Offered: the caller's device features plus VHOST_USER_F_PROTOCOL_FEATURES; protocol features REPLY_ACK and
// SLAVE_REQ (without SLAVE_REQ, virtio_uml fails its probe). Not offered, so refused if asked for: dirty
// logging, in-band notifications, config space, status, memory slots; GET_VRING_BASE (amp's queues do not
// resume where another backend stopped) and SET_VRING_BASE other than 0; changing an enabled queue's size,
// rings, kick or call descriptor (QEMU swaps call descriptors of running queues; UML never does). A request
// the backend does not take ends the connection with one line that says why (handle() returns it); NEED_REPLY
// gets its u64 ack.
//
// Thread-safety: one thread at a time (the connection's owner).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/virtio/linux/vhost_user_message.hpp"
#include "amp/virtio/transport.hpp"

namespace amp::virtio {

struct VhostUserConfig {
  /// The virtio features the device offers (VIRTIO_F_VERSION_1 included if wanted).
  std::uint64_t device_features = 0;
  std::uint32_t queues = 2;
  /// The largest ring a front end may ask for (a power of two).
  std::uint32_t max_queue_size = 1024;
  /// How long the rest of a message may take once its header started arriving.
  std::chrono::milliseconds timeout{5000};
};

/// One queue as the front end set it up.
struct VhostUserQueue {
  std::uint32_t num = 0;
  bool addressed = false;                              ///< SET_VRING_ADDR seen
  metal::DeviceAddress desc = 0, avail = 0, used = 0;  ///< guest addresses, checked inside the memory
  metal::UniqueFd kick;
  metal::UniqueFd call;
  bool enabled = false;
};

class VhostUserBackend {
 public:
  explicit VhostUserBackend(VhostUserConfig config);

  /// What a handled message changed, for the caller to act on.
  enum class Change : std::uint8_t { kNone, kQueueEnabled, kQueueDisabled, kMemory, kReset };
  struct Handled {
    std::uint32_t request = 0;
    Change change = Change::kNone;
    std::uint32_t queue = 0;  ///< for kQueueEnabled / kQueueDisabled
  };

  /// Runs before a handled message's reply or ack goes out: the caller's chance to stop using what the
  /// message takes away (a queue disabled, a reset) before the front end is told it may reuse it.
  using BeforeReply = std::function<void(const Handled&)>;

  /// Reads one message from `socket` (header and payload, at most `timeout` each: call it once the socket is
  /// readable), acts on it, calls `before_reply` and sends its reply. An error means the connection must
  /// end: the message was malformed or not one this backend takes (the error says which and why), or the
  /// socket failed (kClosed when the front end hung up). RESET_OWNER only reports kReset: the caller stops
  /// using the memory and the queues' descriptors, then calls reset().
  metal::SysResult<Handled> handle(metal::UnixSocket& socket, const BeforeReply& before_reply = {});

  /// Forgets the session: ownership, features, memory (unmapped) and queues (descriptors closed).
  void reset();

  std::uint64_t device_features() const noexcept { return config_.device_features; }
  std::uint64_t acked_features() const noexcept { return acked_features_; }
  std::uint64_t protocol_features() const noexcept { return protocol_features_; }
  const std::vector<metal::SharedMemory>& memory() const noexcept { return memory_; }
  /// Has `event_fd` signalled when a front end shrinks a memory file under us (see SharedMemory::lost()).
  void notify_when_memory_lost(int event_fd) noexcept {
    for (metal::SharedMemory& m : memory_) m.notify_when_lost(event_fd);
  }
  const VhostUserQueue& queue(std::uint32_t index) const noexcept { return queues_[index]; }
  std::uint32_t queue_count() const noexcept { return config_.queues; }
  /// Queue `index` as amp's split queues place it: desc at `da`, avail right after the descriptors, used at
  /// the next `align` (4096) boundary. kMalformed when the front end's three addresses are not that layout.
  metal::SysResult<QueueInfo> queue_info(std::uint32_t index) const;

 private:
  metal::SysResult<Handled> act(const vhost_user::Header& h, std::span<const std::byte> payload,
                                std::vector<metal::UniqueFd>& fds, bool& acked_by_reply);
  metal::SysResult<std::uint32_t> queue_index(const vhost_user::Header& h, std::uint32_t index) const;

  VhostUserConfig config_;
  bool owner_ = false;
  std::uint64_t acked_features_ = 0;
  std::uint64_t protocol_features_ = 0;
  metal::UniqueFd slave_req_;
  std::optional<vhost_user::MemoryTable> table_;
  std::vector<metal::SharedMemory> memory_;
  std::vector<VhostUserQueue> queues_;
  std::optional<std::uint64_t> reply_;  // the u64 a GET_* request is answered with
};

}  // namespace amp::virtio
