// SPDX-License-Identifier: BSD-3-Clause
// Two real processes joined by an rpmsg Link: every transport, notification mode and role assignment. The
// child serves an echo endpoint it announces; the parent finds it through the name service and checks every
// echo, for every payload size from 1 byte to the MTU.
#include "amp/rpmsg/linux/link.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "amp/metal/time.hpp"
#include "amp/rproc/resource_table.hpp"

namespace amp::rpmsg {
namespace {

using namespace std::chrono_literals;

struct Case {
  const char* name;
  NotifyMode notify;
  Role parent_role;
  bool posix;                                      // a named POSIX shm object instead of a memfd
  bool openamp;                                    // the openamp-linux preset
  unsigned parent_index;                           // openamp: the parent's process index
  std::uint32_t buffer_size = kDefaultBufferSize;  // the creator's, declared through VIRTIO_RPMSG_F_BUFSZ
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

/// The child: joins (or, with the OpenAMP preset, takes its index), serves an echo endpoint until the
/// parent hangs up. Returns the exit code.
int child_main(const Case& c, metal::UnixSocket sock, const std::string& sock_path,
               const std::string& shm_name) {
  const Role role = c.parent_role == Role::kDriver ? Role::kDevice : Role::kDriver;
  metal::SysResult<std::unique_ptr<Link>> link = metal::sys_fail(Status::kInternal, "unset");
  if (c.openamp) {
    link = Link::openamp_linux(1 - c.parent_index, role, 10s, sock_path, shm_name);
  } else {
    LinkConfig cfg;
    cfg.role = role;
    link = Link::join(std::move(sock), cfg);
  }
  if (!link) {
    std::fprintf(stderr, "child: %s\n", link.error().message.c_str());
    return 20;
  }
  Endpoint echo;
  std::atomic<int> echoed{0};
  const Status s = (*link)->device().create_endpoint(echo, "amp-echo", kAddrAny, kAddrAny,
                                                     [&](Endpoint& ep, const Message& m) {
                                                       if (ok(ep.send(m.payload, 5'000'000'000))) ++echoed;
                                                     });
  if (!ok(s)) return 21;
  if (!(*link)->wait_peer_gone(60s)) return 22;
  echo.destroy();
  (*link)->close();
  return echoed.load() > 0 ? 0 : 23;
}

/// Finds the peer's "amp-echo" through the name service and checks the echo of every size up to the MTU.
/// `negotiated`: the table declares the buffer size and both sides agreed to VIRTIO_RPMSG_F_BUFSZ.
void expect_echo_of_every_size(Link& link, std::uint32_t buffer_size = kDefaultBufferSize,
                               bool negotiated = false) {
  Device& dev = link.device();

  std::mutex m;
  std::condition_variable cv;
  std::string last;
  int received = 0;
  Endpoint ep;
  bool bound = false;
  dev.set_name_service_handler([&](Device& d, std::string_view name, std::uint32_t remote) {
    if (name != "amp-echo") return;
    const Status s = d.create_endpoint(ep, name, kAddrAny, remote, [&](Endpoint&, const Message& msg) {
      std::lock_guard lock(m);
      last.assign(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
      ++received;
      cv.notify_all();
    });
    std::lock_guard lock(m);
    bound = ok(s);
    cv.notify_all();
  });
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return bound; })) << "no announcement from the child";
  }
  ASSERT_EQ(dev.payload_size(), buffer_size - kHeaderSize);
  EXPECT_EQ((dev.features() >> kFeatureBufferSizes) & 1U, negotiated ? 1U : 0U);
  std::string pattern(dev.payload_size(), '\0');
  for (std::size_t i = 0; i < pattern.size(); ++i)
    pattern[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    // Under a sanitizer (every copied byte checked) sizes above 4096 go in steps of 61, the last 64 each.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr std::size_t kStride = 61;
#else
  constexpr std::size_t kStride = 1;
#endif
  int sent = 0;
  for (std::size_t size = 1; size <= dev.payload_size();
       size += (size < 4096 || size + 64 > dev.payload_size()) ? 1 : kStride) {
    ++sent;
    const std::string_view payload = std::string_view(pattern).substr(0, size);
    ASSERT_EQ(ep.send(std::as_bytes(std::span(payload)), 5'000'000'000), Status::kOk) << size;
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return received == sent; })) << "no echo of size " << size;
    ASSERT_EQ(last, payload);
  }
  const std::string too_big(dev.payload_size() + 1, 'x');
  EXPECT_EQ(ep.send(std::as_bytes(std::span(too_big))), Status::kTooLarge);
  EXPECT_EQ(dev.stats().rx_malformed, 0U);
  ep.destroy();
}

/// Forks a child running child_main() on the second socket of `socks`; the parent keeps the first.
pid_t fork_child(const Case& c, std::pair<metal::UnixSocket, metal::UnixSocket>& socks,
                 const std::string& sock_path, const std::string& shm_name) {
  const pid_t pid = fork();
  if (pid == 0) {
    socks.first = metal::UnixSocket(metal::UniqueFd());
    _exit(child_main(c, std::move(socks.second), sock_path, shm_name));
  }
  socks.second = metal::UnixSocket(metal::UniqueFd());
  return pid;
}

class LinkTest : public ::testing::TestWithParam<Case> {};

TEST_P(LinkTest, EchoOfEverySizeBetweenTwoProcesses) {
  const Case c = GetParam();
  const std::string tag = std::to_string(getpid()) + "-" + c.name;
  const std::string sock_path = ::testing::TempDir() + "amp-link-" + tag + ".sock";
  const std::string shm_name = "amp-test-" + tag;
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const pid_t pid = fork_child(c, *socks, sock_path, shm_name);
  ASSERT_GE(pid, 0);

  metal::SysResult<std::unique_ptr<Link>> link = metal::sys_fail(Status::kInternal, "unset");
  if (c.openamp) {
    link = Link::openamp_linux(c.parent_index, c.parent_role, 10s, sock_path, shm_name);
  } else {
    LinkConfig cfg;
    cfg.role = c.parent_role;
    cfg.notify = c.notify;
    if (c.posix) cfg.posix_shm_name = shm_name;
    cfg.buffer_size = c.buffer_size;
    link = Link::create(std::move(socks->first), cfg);
  }
  ASSERT_TRUE(link) << link.error().message;
  ASSERT_NO_FATAL_FAILURE(expect_echo_of_every_size(**link, c.buffer_size, !c.openamp));
  link->reset();  // hang up: the child sees the peer gone and exits

  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  if (c.posix || c.openamp) (void)metal::shm::unlink_posix(shm_name);
}

INSTANTIATE_TEST_SUITE_P(
    Transports, LinkTest,
    ::testing::Values(Case{"memfd_eventfd_host", NotifyMode::kEventFd, Role::kDriver, false, false, 0},
                      Case{"memfd_eventfd_remote", NotifyMode::kEventFd, Role::kDevice, false, false, 0},
                      Case{"memfd_socket_host", NotifyMode::kSocket, Role::kDriver, false, false, 0},
                      Case{"memfd_socket_remote", NotifyMode::kSocket, Role::kDevice, false, false, 0},
                      Case{"memfd_poll_host", NotifyMode::kPoll, Role::kDriver, false, false, 0},
                      Case{"memfd_poll_remote", NotifyMode::kPoll, Role::kDevice, false, false, 0},
                      Case{"memfd_adaptive_host", NotifyMode::kAdaptive, Role::kDriver, false, false, 0},
                      Case{"memfd_adaptive_remote", NotifyMode::kAdaptive, Role::kDevice, false, false, 0},
                      Case{"posix_eventfd_host", NotifyMode::kEventFd, Role::kDriver, true, false, 0},
                      // Bigger buffers, declared by the device's table and taken by the driver.
                      Case{"buffers_4k_host", NotifyMode::kEventFd, Role::kDriver, false, false, 0, 4096},
                      Case{"buffers_4k_remote", NotifyMode::kSocket, Role::kDevice, false, false, 0, 4096},
                      Case{"buffers_64k_host", NotifyMode::kEventFd, Role::kDriver, false, false, 0, 65536},
                      Case{"buffers_64k_remote", NotifyMode::kEventFd, Role::kDevice, false, false, 0, 65536},
                      Case{"posix_socket_remote", NotifyMode::kSocket, Role::kDevice, true, false, 0},
                      // OpenAMP's echo demo: the remote (device) is process 0, the host process 1.
                      Case{"openamp_host_is_client", NotifyMode::kSocket, Role::kDriver, false, true, 1},
                      Case{"openamp_host_is_server", NotifyMode::kSocket, Role::kDriver, false, true, 0}),
    case_name);

// A table the caller laid out (as the process driver does with a firmware's table): the table not at 0, the
// vrings where its entry says, a device address that is not 0, the pool wherever the layout says.
TEST(LinkCreateIn, CallerPreparedMemory) {
  constexpr metal::DeviceAddress kBase = 0x4000'0000;
  constexpr std::size_t kSize = 0x60000;
  auto shm = metal::shm::create_memfd("amp-test-create-in", kSize, kBase);
  ASSERT_TRUE(shm) << shm.error().message;
  LinkLayout layout;
  layout.size = kSize;
  layout.device_address = kBase;
  layout.table = 0x100;
  layout.table_size = 0x200;
  layout.pool = 0x20000;
  layout.pool_size = 2 * 64 * kDefaultBufferSize;
  const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{kBase + 0x12000, 0x1000, 64, 0},
                                               virtio::QueueInfo{kBase + 0x4000, 0x1000, 64, 1}};
  auto table = shm->region().subregion(layout.table, layout.table_size);
  ASSERT_TRUE(table);
  ASSERT_TRUE(virtio::write_single_vdev_table(*table, {kVirtioIdRpmsg, 0, 1U << kFeatureNs, 0, rings}));

  // Layouts that do not fit the memory are refused before anything is sent.
  LinkLayout outside = layout;
  outside.pool = kSize - 0x1000;
  auto unused = metal::UnixSocket::pair();
  ASSERT_TRUE(unused);
  auto refused = Link::create_in(std::move(unused->first), {}, std::move(*shm), outside);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, Status::kInvalidArgument);
  shm = metal::shm::create_memfd("amp-test-create-in", kSize, kBase);
  ASSERT_TRUE(shm);
  table = shm->region().subregion(layout.table, layout.table_size);
  ASSERT_TRUE(virtio::write_single_vdev_table(*table, {kVirtioIdRpmsg, 0, 1U << kFeatureNs, 0, rings}));

  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const pid_t pid =
      fork_child(Case{"join", NotifyMode::kEventFd, Role::kDriver, false, false, 0}, *socks, "", "");
  ASSERT_GE(pid, 0);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  auto link = Link::create_in(std::move(socks->first), cfg, std::move(*shm), layout);
  ASSERT_TRUE(link) << link.error().message;
  ASSERT_NO_FATAL_FAILURE(expect_echo_of_every_size(**link));
  // The buffers came from the layout's pool, at device addresses from kBase.
  auto first_desc = (*link)->memory().region().load<std::uint64_t>(0x12000);
  ASSERT_TRUE(first_desc);
  EXPECT_GE(*first_desc, kBase + layout.pool);
  EXPECT_LT(*first_desc, kBase + layout.pool + layout.pool_size);
  link->reset();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The joiner trusts nothing in the hello: a layout outside the memory it describes is refused.
// A table whose first vdev is something else (a console, say): the layout names the rpmsg one, and both
// sides use it.
TEST(LinkCreateIn, TheRpmsgVdevNeedNotBeTheFirst) {
  constexpr std::size_t kSize = 0x60000;
  auto shm = metal::shm::create_memfd("amp-test-second-vdev", kSize, 0);
  ASSERT_TRUE(shm) << shm.error().message;
  const std::array<virtio::QueueInfo, 1> console{virtio::QueueInfo{0x2000, 0x1000, 16, 0}};
  const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{0x4000, 0x1000, 64, 1},
                                               virtio::QueueInfo{0x8000, 0x1000, 64, 2}};
  auto table = shm->region().span_at(0, 0x1000);
  ASSERT_TRUE(table);
  rproc::TableBuilder b(*table);
  ASSERT_EQ(b.add_vdev(3, 0, console, 0), Status::kOk);
  ASSERT_EQ(b.add_vdev(kVirtioIdRpmsg, 1U << kFeatureNs, rings, 0), Status::kOk);
  ASSERT_TRUE(b.finish());
  LinkLayout layout;
  layout.size = kSize;
  layout.table = 0;
  layout.table_size = 0x1000;
  layout.vdev = 1;
  layout.pool = 0x10000;
  layout.pool_size = 2 * 64 * kDefaultBufferSize;
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const pid_t pid =
      fork_child(Case{"join", NotifyMode::kEventFd, Role::kDriver, false, false, 0}, *socks, "", "");
  ASSERT_GE(pid, 0);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  auto link = Link::create_in(std::move(socks->first), cfg, std::move(*shm), layout);
  ASSERT_TRUE(link) << link.error().message;
  ASSERT_NO_FATAL_FAILURE(expect_echo_of_every_size(**link));
  // The console's status was never touched: only the rpmsg vdev went through the handshake.
  auto console_status = (*link)->memory().region().load<std::uint8_t>(virtio::vdev::kStatus + 4 + 24);
  ASSERT_TRUE(console_status);
  EXPECT_EQ(*console_status, 0);
  link->reset();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LinkJoin, RefusesAHelloWhoseLayoutIsOutsideTheMemory) {
  auto shm = metal::shm::create_memfd("amp-test-bad-hello", 0x10000);
  ASSERT_TRUE(shm);
  struct Field {
    std::size_t offset;
    std::uint64_t value;
  };
  // Offsets in the hello: shm_size 24, device_address 96, table 104, table_size 112, pool 120, pool_size 128.
  // The first case is the control: a layout that fits gets past the check (and then finds no table).
  for (const Field f : {Field{104, 0}, Field{104, 0x10000}, Field{112, 0x10001},
                        Field{120, ~std::uint64_t{0}}, Field{128, 0x10001}, Field{24, 0}}) {
    std::array<std::byte, 136> hello{};
    auto put = [&](std::size_t at, std::uint64_t v, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) hello[at + i] = static_cast<std::byte>(v >> (8 * i));
    };
    std::memcpy(hello.data(), "AMPL", 4);
    put(4, 3, 4);         // version
    put(8, 0, 1);         // creator: driver
    put(9, 2, 1);         // notify: poll (no eventfds)
    put(12, 64, 4);       // ring size
    put(16, 512, 4);      // buffer size
    put(24, 0x10000, 8);  // shm size
    put(112, 0x1000, 8);  // table size
    put(f.offset, f.value, 8);
    auto socks = metal::UnixSocket::pair();
    ASSERT_TRUE(socks);
    const int fds[] = {shm->fd()};
    ASSERT_TRUE(ok(socks->first.send_all(hello, fds)));
    LinkConfig cfg;
    cfg.role = Role::kDevice;
    cfg.timeout = 1s;
    auto link = Link::join(std::move(socks->second), cfg);
    ASSERT_FALSE(link) << f.offset;
    const bool control = f.offset == 104 && f.value == 0;
    EXPECT_EQ(link.error().status, Status::kMalformed) << f.offset << ": " << link.error().message;
    EXPECT_EQ(link.error().message.find("layout") != std::string::npos, !control) << link.error().message;
  }
}

TEST(LinkJoin, APeerThatStopsHalfWayThroughItsHelloTimesOut) {
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const std::array<std::byte, 10> part{std::byte{'A'}, std::byte{'M'}, std::byte{'P'}, std::byte{'L'}};
  ASSERT_TRUE(ok(socks->first.send_all(part)));
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.timeout = 300ms;
  auto link = Link::join(std::move(socks->second), cfg);  // must come back, not wait for the rest forever
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().status, Status::kTimeout) << link.error().message;
  EXPECT_NE(link.error().message.find("half-way"), std::string::npos) << link.error().message;
}

TEST(LinkJoin, RefusesMemoryThePeerCouldShrink) {
  const int raw = ::memfd_create("amp-test-unsealed", MFD_CLOEXEC);
  ASSERT_GE(raw, 0);
  metal::UniqueFd unsealed(raw);
  ASSERT_EQ(::ftruncate(raw, 0x10000), 0);
  std::array<std::byte, 136> hello{};
  auto put = [&](std::size_t at, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) hello[at + i] = static_cast<std::byte>(v >> (8 * i));
  };
  std::memcpy(hello.data(), "AMPL", 4);
  put(4, 3, 4);
  put(9, 2, 1);  // poll: no eventfds
  put(12, 64, 4);
  put(16, 512, 4);
  put(24, 0x10000, 8);
  put(112, 0x1000, 8);
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const int fds[] = {raw};
  ASSERT_TRUE(ok(socks->first.send_all(hello, fds)));
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.timeout = 1s;
  auto link = Link::join(std::move(socks->second), cfg);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().status, Status::kMalformed);
  EXPECT_NE(link.error().message.find("sealed"), std::string::npos) << link.error().message;
}

TEST(LinkLayoutTest, OpenAmpTableGoldenBytes) {
  // What process 0 of the preset writes at the start of openamp.shm.
  const std::string shm_name = "amp-test-golden-" + std::to_string(getpid());
  const std::string sock_path = ::testing::TempDir() + "amp-golden-" + std::to_string(getpid()) + ".sock";
  // The client's link lives until the server's is made: a client that hung up as soon as its own
  // side was ready could end the server's handshake before it is done.
  metal::SysResult<std::unique_ptr<Link>> client_link = metal::sys_fail(Status::kInternal, "unset");
  std::thread client([&] { client_link = Link::openamp_linux(1, Role::kDriver, 10s, sock_path, shm_name); });
  auto server = Link::openamp_linux(0, Role::kDevice, 10s, sock_path, shm_name);
  client.join();
  ASSERT_TRUE(client_link) << client_link.error().message;
  ASSERT_TRUE(server) << server.error().message;
  const std::byte* t = (*server)->memory().bytes().data();
  // clang-format off
  const std::uint8_t expected[] = {
      1, 0, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,   // ver 1, num 1, reserved
      20, 0, 0, 0,                                          // offset[0]
      3, 0, 0, 0,                                           // RSC_VDEV
      7, 0, 0, 0,  0, 0, 0, 0,  1, 0, 0, 0};                // id 7, notifyid 0, dfeatures 1
  const std::uint8_t rings[] = {
      0x00, 0x40, 0, 0,  0x00, 0x10, 0, 0,  0x00, 0x01, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,
      0x00, 0x80, 0, 0,  0x00, 0x10, 0, 0,  0x00, 0x01, 0, 0,  2, 0, 0, 0,  0, 0, 0, 0};
  // clang-format on
  EXPECT_EQ(std::memcmp(t, expected, sizeof expected), 0);
  EXPECT_EQ(std::memcmp(t + 24 + 24, rings, sizeof rings), 0);
  EXPECT_EQ(static_cast<std::uint8_t>(t[24 + 21]), 2) << "num_of_vrings";
  EXPECT_EQ((*server)->memory().size(), 0x80000U);
  (void)metal::shm::unlink_posix(shm_name);
}

}  // namespace
}  // namespace amp::rpmsg
