// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes VhostUserBackend with what a hostile front end may send over its socket: a sequence of messages
// (any request number, flags, payload and length, with memfds or eventfds attached), each handled until the
// backend ends the connection. Checks that:
//  - every handled message leaves each queue with ring addresses wholly inside the mapped memory;
//  - a queue_info() that succeeds describes rings inside the memory, in the layout amp's queues use;
//  - an enabled queue has its rings, kick and call;
// and, through ASan, that nothing reads or writes out of bounds.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <vector>

#include "amp/virtio/linux/vhost_user_backend.hpp"
#include "amp/virtio/ring.hpp"
#include "fuzz_input.hpp"

namespace {

using amp::fuzz::check;
using amp::metal::UniqueFd;
using amp::metal::UnixSocket;
namespace vu = amp::virtio::vhost_user;

/// Whether [da, da + len) lies in one of the backend's mappings.
bool mapped(const amp::virtio::VhostUserBackend& b, std::uint64_t da, std::uint64_t len) {
  for (const auto& m : b.memory()) {
    const std::uint64_t base = m.device_address();
    if (da >= base && da - base <= m.size() && len <= m.size() - (da - base)) return true;
  }
  return false;
}

// The requests the backend knows, so that most inputs reach one of them.
constexpr std::uint32_t kRequests[] = {1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 24};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  amp::fuzz::default_max_len(argc, argv, "-max_len=1024");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amp::fuzz::Input in(data, size);
  auto pair = UnixSocket::pair();
  if (!pair) return 0;
  UnixSocket front = std::move(pair->first);
  UnixSocket back = std::move(pair->second);
  (void)front.set_nonblocking(true);
  amp::virtio::VhostUserBackend backend({.device_features = 1ULL | (1ULL << 29) | (1ULL << 32),
                                         .queues = 2,
                                         .max_queue_size = 256,
                                         .timeout = std::chrono::milliseconds(10)});
  for (int step = 0; step < 32 && !in.done(); ++step) {
    const auto pick = in.take<std::uint8_t>();
    const std::uint32_t request =
        pick < 240 ? kRequests[pick % std::size(kRequests)] : in.take<std::uint32_t>();
    const std::uint32_t flags = vu::kVersion | (in.take<std::uint8_t>() & vu::kFlagNeedReply);
    const std::size_t len = in.take<std::uint16_t>() % (vu::kMaxPayload + 8);
    const std::size_t nfds = in.take<std::uint8_t>() % 4;
    std::vector<UniqueFd> owned;
    std::vector<int> fds;
    for (std::size_t i = 0; i < nfds; ++i) {
      const auto kind = in.take<std::uint8_t>();
      if (kind % 2 == 0) {
        owned.emplace_back(::eventfd(0, EFD_CLOEXEC));
      } else {
        UniqueFd m(::memfd_create("fuzz-vhost-user", MFD_CLOEXEC));
        if (m.valid() && ::ftruncate(m.get(), static_cast<off_t>(in.take<std::uint16_t>())) != 0) m.reset();
        owned.push_back(std::move(m));
      }
      if (owned.back().valid()) fds.push_back(owned.back().get());
    }
    std::vector<std::byte> msg(vu::kHeaderSize + len);
    const std::uint32_t words[3] = {request, flags, static_cast<std::uint32_t>(len)};
    std::memcpy(msg.data(), words, sizeof words);
    for (std::size_t i = 0; i < len; ++i) msg[vu::kHeaderSize + i] = std::byte(in.take<std::uint8_t>());
    if (!amp::ok(front.send_all(msg, fds))) break;
    auto handled = backend.handle(back);
    // Replies are read and dropped, so that the socket never fills.
    std::byte sink[512];
    for (;;) {
      auto n = front.receive(sink);
      if (!n || *n == 0) break;
    }
    if (!handled) break;  // the connection ends there
    if (handled->change == amp::virtio::VhostUserBackend::Change::kReset)
      backend.reset();  // as its owner would
    for (std::uint32_t q = 0; q < backend.queue_count(); ++q) {
      const amp::virtio::VhostUserQueue& vq = backend.queue(q);
      if (vq.addressed) {
        const std::uint64_t n = vq.num;
        check(mapped(backend, vq.desc, 16 * n) && mapped(backend, vq.avail, 6 + 2 * n) &&
              mapped(backend, vq.used, 6 + 8 * n));
      }
      if (vq.enabled) check(vq.addressed && vq.kick.valid() && vq.call.valid());
      if (auto info = backend.queue_info(q)) {
        auto layout = amp::virtio::RingLayout::compute(info->num, info->align);
        check(static_cast<bool>(layout) &&
              mapped(backend, info->da, layout->used + 6 + 8 * std::uint64_t{info->num}));
      }
    }
  }
  return 0;
}
