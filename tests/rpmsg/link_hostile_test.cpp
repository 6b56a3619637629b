// SPDX-License-Identifier: BSD-3-Clause
// A Link whose peer turns hostile after joining: it makes a notification eventfd block, or shrinks the
// POSIX shm object under us. The link must end with a clear failure(), nothing blocks, nothing crashes.
// The peer here is written by hand: it takes the hello, answers "joined", then misbehaves.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "amp/rpmsg/linux/link.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::rpmsg {
namespace {

using namespace std::chrono_literals;

/// The joiner's "joined" answer (link.cpp's HelloReply), in the driver's opposite role.
std::array<std::byte, 128> joined_reply() {
  std::array<std::byte, 128> r{};
  std::memcpy(r.data(), "AMPR", 4);
  const std::uint32_t version = 3;
  std::memcpy(r.data() + 4, &version, 4);
  r[12] = std::byte{1};  // the device role
  return r;
}

/// A creator (amp, driver role) on one end, the hand-written peer on the other.
struct Hostile {
  explicit Hostile(LinkConfig cfg) {
    auto socks = metal::UnixSocket::pair();
    EXPECT_TRUE(socks);
    peer.emplace(std::move(socks->second));
    cfg.role = Role::kDriver;
    creator = std::thread(
        [this, cfg, s = std::move(socks->first)]() mutable { link = Link::create(std::move(s), cfg); });
    EXPECT_TRUE(ok(peer->receive_exact(hello, &fds, 3, 5000ms)));
  }
  ~Hostile() {
    if (creator.joinable()) creator.join();
  }
  void answer_joined() { EXPECT_TRUE(ok(peer->send_all(joined_reply()))); }
  void wait_created() {
    creator.join();
    ASSERT_TRUE(link) << link.error().message;
  }

  std::optional<metal::UnixSocket> peer;
  std::array<std::byte, 136> hello{};
  std::vector<metal::UniqueFd> fds;
  metal::SysResult<std::unique_ptr<Link>> link = metal::sys_fail(Status::kInternal, "unset");
  std::thread creator;
};

TEST(LinkHostile, AKickEventfdMadeBlockingEndsTheLinkInsteadOfBlockingIt) {
  LinkConfig cfg;
  cfg.notify = NotifyMode::kEventFd;
  cfg.timeout = 2s;
  Hostile h(cfg);
  ASSERT_EQ(h.fds.size(), 3U);  // the memfd, the creator's kicks to us, our kicks to it
  // The eventfd the creator writes its kicks into is shared with us: clear O_NONBLOCK, fill the counter.
  const int kicks_to_us = h.fds[1].get();
  ASSERT_EQ(::fcntl(kicks_to_us, F_SETFL, 0), 0);
  const std::uint64_t most = 0xfffffffffffffffeULL;
  ASSERT_EQ(::write(kicks_to_us, &most, sizeof most), 8);
  h.answer_joined();
  // The driver kicks at once after start (its receive buffers are there): that write used to block for
  // ever, and with it Link::create.
  ASSERT_NO_FATAL_FAILURE(h.wait_created());
  Link& link = **h.link;
  ASSERT_TRUE(link.wait_peer_gone(5s));
  EXPECT_NE(link.failure().find("eventfd"), std::string::npos) << link.failure();
  Endpoint ep;
  ASSERT_EQ(link.device().create_endpoint(ep, "", 0x500, 0x400, nullptr), Status::kOk);
  const std::byte one{1};
  EXPECT_EQ(ep.send(std::span(&one, 1), 100'000'000), Status::kClosed);
}

TEST(LinkHostile, AShrunkenPosixShmEndsThePollingLinkWithoutACrash) {
  const std::string name = "amp-test-shrink-" + std::to_string(::getpid());
  LinkConfig cfg;
  cfg.notify = NotifyMode::kPoll;  // the link's thread reads the rings all the time
  cfg.posix_shm_name = name;
  cfg.timeout = 2s;
  Hostile h(cfg);
  ASSERT_TRUE(h.fds.empty());
  metal::UniqueFd shm(::shm_open(("/" + name).c_str(), O_RDWR, 0));
  ASSERT_TRUE(shm);
  ::shm_unlink(("/" + name).c_str());
  h.answer_joined();
  ASSERT_NO_FATAL_FAILURE(h.wait_created());
  Link& link = **h.link;
  EXPECT_FALSE(link.peer_gone());
  ASSERT_EQ(::ftruncate(shm.get(), 0), 0);  // SIGBUS for whoever touches it next
  ASSERT_TRUE(link.wait_peer_gone(5s));
  EXPECT_NE(link.failure().find("shrank the shared memory"), std::string::npos) << link.failure();
  EXPECT_TRUE(link.memory().lost());
}

TEST(LinkHostile, AShrunkenPosixShmFaultingInASenderEndsTheLinkToo) {
  // Event-driven: the link's thread sleeps; the fault comes in the thread that sends.
  const std::string name = "amp-test-shrink-send-" + std::to_string(::getpid());
  LinkConfig cfg;
  cfg.notify = NotifyMode::kSocket;
  cfg.posix_shm_name = name;
  cfg.timeout = 2s;
  Hostile h(cfg);
  metal::UniqueFd shm(::shm_open(("/" + name).c_str(), O_RDWR, 0));
  ASSERT_TRUE(shm);
  ::shm_unlink(("/" + name).c_str());
  h.answer_joined();
  ASSERT_NO_FATAL_FAILURE(h.wait_created());
  Link& link = **h.link;
  ASSERT_EQ(::ftruncate(shm.get(), 0), 0);
  Endpoint ep;
  ASSERT_EQ(link.device().create_endpoint(ep, "", 0x500, 0x400, nullptr), Status::kOk);
  const std::byte one{1};
  (void)ep.send(std::span(&one, 1), 100'000'000);  // touches the buffers: the fault, survived
  ASSERT_TRUE(link.wait_peer_gone(5s));
  EXPECT_NE(link.failure().find("shrank the shared memory"), std::string::npos) << link.failure();
  EXPECT_EQ(ep.send(std::span(&one, 1), 100'000'000), Status::kClosed);
}

TEST(LinkHostile, ARingProtocolFaultEndsTheLink) {
  // After joining, the peer moves the driver's receive used index far past what the driver gave it, and
  // kicks: the link must go down (peer_gone, sends kClosed), not just stop processing.
  LinkConfig cfg;
  cfg.notify = NotifyMode::kEventFd;
  cfg.timeout = 2s;
  Hostile h(cfg);
  ASSERT_EQ(h.fds.size(), 3U);
  const auto layout = LinkLayout::compute(cfg.ring_size, cfg.buffer_size);
  ASSERT_TRUE(layout);
  void* mem = ::mmap(nullptr, layout->size, PROT_READ | PROT_WRITE, MAP_SHARED, h.fds[0].get(), 0);
  ASSERT_NE(mem, MAP_FAILED);
  h.answer_joined();
  ASSERT_NO_FATAL_FAILURE(h.wait_created());
  Link& link = **h.link;
  const auto ring = *virtio::RingLayout::compute(cfg.ring_size, layout->ring_align);
  const std::uint16_t runaway = 0x8000;
  std::memcpy(static_cast<std::byte*>(mem) + layout->vring0 + ring.used_idx(), &runaway, 2);
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(h.fds[2].get(), &one, sizeof one), 8);  // our kick to the creator
  ASSERT_TRUE(link.wait_peer_gone(5s));
  EXPECT_NE(link.failure().find("ring protocol"), std::string::npos) << link.failure();
  Endpoint ep;
  ASSERT_EQ(link.device().create_endpoint(ep, "", 0x500, 0x400, nullptr), Status::kOk);
  const std::byte b{1};
  EXPECT_EQ(ep.send(std::span(&b, 1), 100'000'000), Status::kClosed);
  ::munmap(mem, layout->size);
}

}  // namespace
}  // namespace amp::rpmsg
