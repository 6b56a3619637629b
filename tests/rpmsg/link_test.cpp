// Two real processes joined by an rpmsg Link: every transport, notification mode and role assignment. The
// child serves an echo endpoint it announces; the parent finds it through the name service and checks every
// echo, for every payload size from 1 byte to the MTU.
#include "amp/rpmsg/linux/link.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "amp/metal/time.hpp"

namespace amp::rpmsg {
namespace {

using namespace std::chrono_literals;

struct Case {
  const char* name;
  NotifyMode notify;
  Role parent_role;
  bool posix;             // a named POSIX shm object instead of a memfd
  bool openamp;           // the openamp-linux preset
  unsigned parent_index;  // openamp: the parent's process index
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

class LinkTest : public ::testing::TestWithParam<Case> {};

TEST_P(LinkTest, EchoOfEverySizeBetweenTwoProcesses) {
  const Case c = GetParam();
  const std::string tag = std::to_string(getpid()) + "-" + c.name;
  const std::string sock_path = ::testing::TempDir() + "amp-link-" + tag + ".sock";
  const std::string shm_name = "amp-test-" + tag;
  auto socks = metal::UnixSocket::pair();
  ASSERT_TRUE(socks);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    socks->first = metal::UnixSocket(metal::UniqueFd());
    _exit(child_main(c, std::move(socks->second), sock_path, shm_name));
  }
  socks->second = metal::UnixSocket(metal::UniqueFd());

  metal::SysResult<std::unique_ptr<Link>> link = metal::sys_fail(Status::kInternal, "unset");
  if (c.openamp) {
    link = Link::openamp_linux(c.parent_index, c.parent_role, 10s, sock_path, shm_name);
  } else {
    LinkConfig cfg;
    cfg.role = c.parent_role;
    cfg.notify = c.notify;
    if (c.posix) cfg.posix_shm_name = shm_name;
    link = Link::create(std::move(socks->first), cfg);
  }
  ASSERT_TRUE(link) << link.error().message;
  Device& dev = (*link)->device();

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
  EXPECT_EQ(dev.payload_size(), 496U);
  for (std::size_t size = 1; size <= dev.payload_size(); ++size) {
    std::string payload(size, '\0');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + (i + size) % 26);
    ASSERT_EQ(ep.send(std::as_bytes(std::span(payload)), 5'000'000'000), Status::kOk) << size;
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return received == static_cast<int>(size); }))
        << "no echo of size " << size;
    ASSERT_EQ(last, payload);
  }
  const std::string too_big(dev.payload_size() + 1, 'x');
  EXPECT_EQ(ep.send(std::as_bytes(std::span(too_big))), Status::kTooLarge);
  EXPECT_EQ(dev.stats().rx_malformed, 0U);
  ep.destroy();
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
                      Case{"posix_socket_remote", NotifyMode::kSocket, Role::kDevice, true, false, 0},
                      // OpenAMP's echo demo: the remote (device) is process 0, the host process 1.
                      Case{"openamp_host_is_client", NotifyMode::kSocket, Role::kDriver, false, true, 1},
                      Case{"openamp_host_is_server", NotifyMode::kSocket, Role::kDriver, false, true, 0}),
    case_name);

TEST(LinkLayoutTest, OpenAmpTableGoldenBytes) {
  // What process 0 of the preset writes at the start of openamp.shm.
  const std::string shm_name = "amp-test-golden-" + std::to_string(getpid());
  const std::string sock_path = ::testing::TempDir() + "amp-golden-" + std::to_string(getpid()) + ".sock";
  std::thread client([&] {
    auto l = Link::openamp_linux(1, Role::kDriver, 10s, sock_path, shm_name);
    ASSERT_TRUE(l) << l.error().message;
  });
  auto server = Link::openamp_linux(0, Role::kDevice, 10s, sock_path, shm_name);
  client.join();
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
