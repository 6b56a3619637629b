// SPDX-License-Identifier: BSD-3-Clause
// The Link's set-up against peers that get it wrong: the joiner's answer (joined, or refused and why), role
// clashes caught on both sides at once, one deadline and a fixed number of descriptors for the whole hello,
// a server that outlives clients which connect and leave, and OpenAMP's global paths taken by one process
// at a time.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "amp/rpmsg/linux/link.hpp"

namespace amp::rpmsg {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string temp_path(const std::string& what) {
  return ::testing::TempDir() + "amp-hs-" + what + "-" + std::to_string(::getpid()) + ".sock";
}

/// A hello by hand (the layout of link.cpp's Hello), for a memfd link in poll mode unless told otherwise.
std::array<std::byte, 136> raw_hello(Role creator, std::uint8_t notify = 2) {
  std::array<std::byte, 136> h{};
  auto put = [&](std::size_t at, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h[at + i] = static_cast<std::byte>(v >> (8 * i));
  };
  std::memcpy(h.data(), "AMPL", 4);
  put(4, 3, 4);
  put(8, creator == Role::kDriver ? 0 : 1, 1);
  put(9, notify, 1);
  put(12, 64, 4);
  put(16, 512, 4);
  put(24, 0x10000, 8);
  put(112, 0x1000, 8);
  return h;
}

struct Reply {
  std::int32_t status = -1;
  std::string reason;
};

/// Reads the joiner's 128-byte answer off the creator's end.
Reply read_reply(metal::UnixSocket& s) {
  std::array<std::byte, 128> r{};
  Reply out;
  if (!ok(s.receive_exact(r, nullptr, 0, 2000ms))) return out;
  EXPECT_EQ(std::memcmp(r.data(), "AMPR", 4), 0);
  std::memcpy(&out.status, r.data() + 8, 4);
  out.reason.assign(reinterpret_cast<const char*>(r.data()) + 16);
  return out;
}

TEST(LinkHandshake, TheJoinerSaysWhyItRefusesAHello) {
  auto shm = metal::shm::create_memfd("amp-test-refused", 0x10000);
  ASSERT_TRUE(shm);
  auto hello = raw_hello(Role::kDriver);
  const std::uint64_t bad_pool = 0x20000;  // outside the memory
  std::memcpy(hello.data() + 120, &bad_pool, 8);
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const int fds[] = {shm->fd()};
  ASSERT_TRUE(ok(socks->first.send_all(hello, fds)));
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.timeout = 1s;
  auto link = Link::join(std::move(socks->second), cfg);
  ASSERT_FALSE(link);
  const Reply r = read_reply(socks->first);
  EXPECT_EQ(r.status, static_cast<std::int32_t>(Status::kMalformed));
  EXPECT_EQ(r.reason, link.error().message);
  EXPECT_NE(r.reason.find("layout"), std::string::npos) << r.reason;
}

/// Both ends of a socket pair, one creating and one joining, each in its own role.
struct Pair {
  metal::SysResult<std::unique_ptr<Link>> creator = metal::sys_fail(Status::kInternal, "unset");
  metal::SysResult<std::unique_ptr<Link>> joiner = metal::sys_fail(Status::kInternal, "unset");
  double seconds = 0;
};

Pair bring_up(Role creator_role, Role joiner_role) {
  auto socks = metal::UnixSocket::pair();
  EXPECT_TRUE(socks);
  Pair p;
  const auto t0 = Clock::now();
  std::thread joiner([&] {
    LinkConfig cfg;
    cfg.role = joiner_role;
    p.joiner = Link::join(std::move(socks->second), cfg);  // default timeouts: 10 s
  });
  LinkConfig cfg;
  cfg.role = creator_role;
  p.creator = Link::create(std::move(socks->first), cfg);
  joiner.join();
  p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return p;
}

TEST(LinkHandshake, BothDriversFailOnBothSidesAtOnce) {
  const Pair p = bring_up(Role::kDriver, Role::kDriver);
  ASSERT_FALSE(p.creator);
  ASSERT_FALSE(p.joiner);
  EXPECT_EQ(p.creator.error().status, Status::kInvalidArgument);
  EXPECT_EQ(p.joiner.error().status, Status::kInvalidArgument);
  EXPECT_NE(p.creator.error().message.find("both sides asked for the driver role"), std::string::npos)
      << p.creator.error().message;
  EXPECT_NE(p.joiner.error().message.find("both sides asked for the driver role"), std::string::npos);
  EXPECT_LT(p.seconds, 5.0) << "the clash must be seen in the hello, not after a 10 s handshake timeout";
}

TEST(LinkHandshake, BothDevicesFailOnBothSidesAtOnce) {
  const Pair p = bring_up(Role::kDevice, Role::kDevice);
  ASSERT_FALSE(p.creator);
  ASSERT_FALSE(p.joiner);
  EXPECT_NE(p.creator.error().message.find("both sides asked for the device role"), std::string::npos)
      << p.creator.error().message;
  EXPECT_LT(p.seconds, 5.0) << "the creator used to wait 10 s for a DRIVER_OK that never came";
}

TEST(LinkHandshake, DifferentRolesStillJoin) {
  const Pair p = bring_up(Role::kDevice, Role::kDriver);
  ASSERT_TRUE(p.creator) << p.creator.error().message;
  ASSERT_TRUE(p.joiner) << p.joiner.error().message;
  EXPECT_EQ((*p.creator)->role(), Role::kDevice);
  EXPECT_EQ((*p.joiner)->role(), Role::kDriver);
}

TEST(LinkHandshake, OneDeadlineForTheWholeHello) {
  // A peer that sends its hello a byte at a time, 20 ms apart (2.7 s for 136 bytes), against a 300 ms
  // timeout: the join gives up at 300 ms, not at the first gap longer than the timeout.
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const auto hello = raw_hello(Role::kDriver);
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    for (std::size_t i = 0; i < hello.size() && !stop.load(); ++i) {
      if (!ok(socks->first.send_all(std::span(hello).subspan(i, 1)))) return;
      std::this_thread::sleep_for(20ms);
    }
  });
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.timeout = 300ms;
  const auto t0 = Clock::now();
  auto link = Link::join(std::move(socks->second), cfg);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stop.store(true);
  trickle.join();
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().status, Status::kTimeout) << link.error().message;
  EXPECT_LT(seconds, 2.0) << "the deadline was restarted by each byte";
}

TEST(LinkHandshake, DescriptorsBeyondAHellosAreRefusedAsTheyArrive) {
  // The hello in two chunks, each carrying three descriptors: the second chunk is already too many, and the
  // join fails then (it used to keep them all, chunk after chunk, until the whole hello had arrived).
  auto shm = metal::shm::create_memfd("amp-test-fds", 0x10000);
  ASSERT_TRUE(shm);
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const auto hello = raw_hello(Role::kDriver);
  const int fds[] = {shm->fd(), shm->fd(), shm->fd()};
  ASSERT_TRUE(ok(socks->first.send_all(std::span(hello).first(1), fds)));
  ASSERT_TRUE(ok(socks->first.send_all(std::span(hello).subspan(1, 1), fds)));
  // ...and the rest never comes.
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.timeout = 5s;
  auto link = Link::join(std::move(socks->second), cfg);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().status, Status::kMalformed) << link.error().message;
  EXPECT_NE(link.error().message.find("descriptors"), std::string::npos) << link.error().message;
}

TEST(LinkAccept, AServerOutlivesClientsThatLeaveWithoutJoining) {
  const std::string path = temp_path("outlive");
  auto listener = metal::UnixListener::listen(path);
  ASSERT_TRUE(listener) << listener.error().message;
  metal::SysResult<std::unique_ptr<Link>> server = metal::sys_fail(Status::kInternal, "unset");
  std::thread serve([&] {
    LinkConfig cfg;
    cfg.role = Role::kDevice;
    cfg.timeout = 1s;
    server = Link::accept(*listener, cfg, 20s);
  });
  // A probe (what a second listen on a busy socket does), a client that answers garbage, and one that
  // connects and stays silent past the handshake timeout.
  {
    auto probe = metal::UnixSocket::connect(path, 2s);
    ASSERT_TRUE(probe);
  }
  {
    auto junk = metal::UnixSocket::connect(path, 2s);
    ASSERT_TRUE(junk);
    std::array<std::byte, 136> hello{};
    std::vector<metal::UniqueFd> fds;
    ASSERT_TRUE(ok(junk->receive_exact(hello, &fds, 4, 2000ms)));
    const std::array<std::byte, 128> garbage{std::byte{'X'}};
    ASSERT_TRUE(ok(junk->send_all(garbage)));
  }
  {
    // One that stays connected and never answers: the server gives it its 1 s, then goes on.
    auto silent = metal::UnixSocket::connect(path, 2s);
    ASSERT_TRUE(silent);
    std::this_thread::sleep_for(1500ms);
  }
  auto second = metal::UnixListener::listen(path);  // refused: the first server is alive
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().status, Status::kAlreadyExists);
  // A real peer still gets served.
  auto conn = metal::UnixSocket::connect(path, 2s);
  ASSERT_TRUE(conn);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  auto client = Link::join(std::move(*conn), cfg);
  serve.join();
  ASSERT_TRUE(client) << client.error().message;
  ASSERT_TRUE(server) << server.error().message;
}

TEST(LinkAccept, GivesUpWhenNoPeerComes) {
  const std::string path = temp_path("nobody");
  auto listener = metal::UnixListener::listen(path);
  ASSERT_TRUE(listener);
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  auto server = Link::accept(*listener, cfg, 100ms);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().status, Status::kTimeout);
  EXPECT_NE(server.error().message.find(path), std::string::npos) << server.error().message;
}

TEST(LinkAccept, APeerThatRefusesEndsTheWaitWithItsReason) {
  const std::string path = temp_path("refuse");
  auto listener = metal::UnixListener::listen(path);
  ASSERT_TRUE(listener);
  std::thread peer([&] {
    auto conn = metal::UnixSocket::connect(path, 2s);
    ASSERT_TRUE(conn);
    LinkConfig cfg;
    cfg.role = Role::kDevice;  // as the server
    EXPECT_FALSE(Link::join(std::move(*conn), cfg));
  });
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  auto server = Link::accept(*listener, cfg, 10s);
  peer.join();
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message.find("both sides asked for the device role"), std::string::npos)
      << server.error().message;
}

TEST(OpenAmpLinux, ASecondProcessOfAnIndexIsRefusedBeforeItTouchesAnything) {
  const std::string shm_name = "amp-test-lock-" + std::to_string(::getpid());
  const std::string sock = temp_path("openamp-lock");
  OpenAmpLinuxConfig first;
  first.index = 0;
  first.role = Role::kDevice;
  first.peer_wait = 20s;
  first.socket_path = sock;
  first.shm_name = shm_name;
  metal::SysResult<std::unique_ptr<Link>> server = metal::sys_fail(Status::kInternal, "unset");
  std::thread serving([&] { server = Link::openamp_linux(first); });
  // Wait until the first has written its table.
  std::array<std::byte, 64> table{};
  for (int i = 0; i < 400; ++i) {
    auto m = metal::shm::open_posix(shm_name, 0x80000, metal::OpenMode::kOpen, 0);
    if (m && std::filesystem::exists(sock)) {
      std::memcpy(table.data(), m->bytes().data(), table.size());
      if (table[0] == std::byte{1}) break;  // resource table version 1
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(table[0], std::byte{1});
  // A second process 0 on the same names: refused at once, with the names, and the table left alone.
  OpenAmpLinuxConfig again = first;
  again.peer_wait = 100ms;
  auto second = Link::openamp_linux(again);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().status, Status::kBusy);
  EXPECT_NE(second.error().message.find("in use by another process"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find(shm_name), std::string::npos);
  {
    auto m = metal::shm::open_posix(shm_name, 0x80000, metal::OpenMode::kOpen, 0);
    ASSERT_TRUE(m);
    EXPECT_EQ(std::memcmp(table.data(), m->bytes().data(), table.size()), 0) << "the second one cleared it";
  }
  // The pair still forms.
  OpenAmpLinuxConfig client = first;
  client.index = 1;
  client.role = Role::kDriver;
  auto host = Link::openamp_linux(client);
  serving.join();
  ASSERT_TRUE(host) << host.error().message;
  ASSERT_TRUE(server) << server.error().message;
  (void)metal::shm::unlink_posix(shm_name);
}

}  // namespace
}  // namespace amp::rpmsg
