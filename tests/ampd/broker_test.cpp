// SPDX-License-Identifier: BSD-3-Clause
// ampd's broker with real processes: a native echo firmware as the remote (rproc::ProcessRemote), the broker
// on a thread of this test, and clients through amp::client::Connection, in this process and in processes
// of their own (tests/ampd/test_client.cpp: one under another uid, one killed mid-stream, 64 at once).
#include "broker.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "amp/client/linux/connection.hpp"
#include "amp/client/linux/endpoint_io.hpp"
#include "amp/metal/log.hpp"

#if !defined(AMP_ECHO_FIRMWARE) || !defined(AMPD_TEST_CLIENT)
#error \
    "AMP_ECHO_FIRMWARE and AMPD_TEST_CLIENT (the native echo firmware's and the client's paths) are set by the build"
#endif

namespace amp::ampd {
namespace {

using namespace std::chrono_literals;
using client::Connection;
using client::EndpointFd;

constexpr uid_t kStranger = 65534;  // nobody

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metal::set_log_level(std::getenv("AMPD_TEST_LOG") ? metal::LogLevel::kDebug : metal::LogLevel::kWarning);
    socket_ = "@ampd-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++);
  }
  void TearDown() override { stop(); }

  /// Starts a broker with one echo remote (recovery on) and `rules`.
  void start(std::vector<Rule> rules = {}) {
    Config c;
    c.socket = socket_;
    RemoteConfig r;
    r.name = "echo";
    r.firmware = AMP_ECHO_FIRMWARE;
    c.remotes.push_back(r);
    c.rules = std::move(rules);
    auto b = Broker::create(std::move(c));
    ASSERT_TRUE(b) << b.error().message;
    broker_ = std::move(*b);
    auto s = broker_->start();
    ASSERT_TRUE(s) << s.error().message;
    thread_ = std::thread([this] { (void)broker_->run(); });
  }
  void stop() {
    if (!broker_) return;
    broker_->stop();
    if (thread_.joinable()) thread_.join();
    broker_.reset();
  }

  Connection connect() {
    auto c = Connection::connect(socket_, 5s);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }
  /// An endpoint on the echo service, once it is announced.
  EndpointFd open_echo(Connection& c) {
    auto svc = c.wait_for(0, "amp-echo", 10s);
    EXPECT_TRUE(svc) << svc.error().message;
    auto ep = c.open(0, "amp-echo", 5s);
    EXPECT_TRUE(ep) << ep.error().message;
    return ep ? std::move(*ep) : EndpointFd{};
  }

  std::string socket_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
  static inline int counter_ = 0;
};

/// Starts tests/ampd/test_client.cpp with `args` (after its socket); its stdout into `out` when given.
pid_t spawn_client(const std::string& socket, std::vector<std::string> args, int* out = nullptr) {
  args.insert(args.begin(), socket);
  args.insert(args.begin(), AMPD_TEST_CLIENT);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  int pipe_fds[2] = {-1, -1};
  if (out != nullptr) {
    if (::pipe(pipe_fds) != 0) return -1;
    posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, pipe_fds[0]);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, AMPD_TEST_CLIENT, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (out != nullptr) {
    ::close(pipe_fds[1]);
    *out = pipe_fds[0];
  }
  return rc == 0 ? pid : -1;
}

/// The client's exit status (-1 when it did not exit by itself).
int wait_client(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Writes `msg` and reads one message back within `timeout`: what was read, or "<error>".
std::string round_trip(int fd, const std::string& msg, std::chrono::milliseconds timeout = 5s) {
  if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    return std::string("<send: ") + std::strerror(errno) + ">";
  }
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "<no answer>";
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) return std::string("<recv: ") + std::strerror(errno) + ">";
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i + seed) % 26);
  return s;
}

TEST_F(BrokerTest, TwoClientsEchoEverySizeThroughOneRemote) {
  start();
  Connection a = connect();
  Connection b = connect();
  EndpointFd ea = open_echo(a);
  EndpointFd eb = open_echo(b);
  ASSERT_TRUE(ea.fd.valid() && eb.fd.valid());
  EXPECT_NE(ea.local, eb.local);
  EXPECT_EQ(ea.mtu, 496U);
  EXPECT_EQ(ea.remote_addr, eb.remote_addr);
  auto remotes = a.list(client::protocol::kAllRemotes, 5s);
  ASSERT_TRUE(remotes) << remotes.error().message;
  ASSERT_EQ(remotes->size(), 1U);
  EXPECT_EQ((*remotes)[0].name, "echo");
  EXPECT_EQ((*remotes)[0].state, rproc::State::kRunning);
  ASSERT_EQ((*remotes)[0].services.size(), 1U);
  EXPECT_EQ((*remotes)[0].services[0].name, "amp-echo");
  // Both at once, interleaved, every size: each gets exactly its own messages back.
  std::thread tb([&] {
    for (std::size_t n = 1; n <= eb.mtu; ++n) {
      const std::string m = pattern(n, 7);
      const std::string got = round_trip(eb.fd.get(), m);
      if (got != m) {
        ADD_FAILURE() << "client b, size " << n << ": " << got.substr(0, 40);
        return;
      }
    }
  });
  for (std::size_t n = 1; n <= ea.mtu; ++n) {
    const std::string m = pattern(n, 3);
    ASSERT_EQ(round_trip(ea.fd.get(), m), m) << "client a, size " << n;
  }
  tb.join();
  EXPECT_EQ(broker_->client_count(), 2U);
}

TEST_F(BrokerTest, SixtyFourClientProcessesEchoEverySizeAtOnce) {
  start();
  {
    Connection c = connect();
    ASSERT_TRUE(c.wait_for(0, "amp-echo", 10s));
  }
  constexpr int kClients = 64;
  std::vector<pid_t> children;
  for (int i = 0; i < kClients; ++i) {
    children.push_back(spawn_client(socket_, {"echo", "amp-echo", std::to_string(i * 1000)}));
    ASSERT_GT(children.back(), 0);
  }
  int failed = 0;
  for (pid_t child : children) {
    const int status = wait_client(child);
    if (status != 0) {
      ++failed;
      ADD_FAILURE() << "client " << child << ": " << status
                    << " (2 connect, 3 open, 4 an echo wrong or missing)";
    }
  }
  EXPECT_EQ(failed, 0);
  for (int i = 0; i < 100 && broker_->client_count() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(broker_->client_count(), 0U) << "the clients' connections were not all cleaned up";
}

TEST_F(BrokerTest, AWriteLargerThanTheMtuEndsThatEndpointOnly) {
  start();
  Connection c = connect();
  EndpointFd big = open_echo(c);
  EndpointFd other = open_echo(c);
  const std::string too_long(big.mtu + 1, 'x');
  // The client library refuses it, as rpmsg_char does (EMSGSIZE), and the endpoint goes on.
  auto refused = client::write_message(big, std::as_bytes(std::span(too_long)));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, Status::kTooLarge);
  EXPECT_EQ(refused.error().sys_errno, EMSGSIZE);
  EXPECT_EQ(round_trip(big.fd.get(), "fine"), "fine");
  // A raw write of it reaches ampd, which ends the endpoint rather than drop the message unsaid.
  ASSERT_EQ(::send(big.fd.get(), too_long.data(), too_long.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(too_long.size()));
  // The endpoint ends: end of file on read, EPIPE (no SIGPIPE: a SEQPACKET socket) on write.
  pollfd p{big.fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char buf[8];
  EXPECT_EQ(::recv(big.fd.get(), buf, sizeof buf, 0), 0);
  EXPECT_EQ(::send(big.fd.get(), "x", 1, 0), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_EQ(round_trip(other.fd.get(), "still here"), "still here");
}

TEST_F(BrokerTest, AClientOfAnotherUidGetsOnlyWhatTheConfigGrants) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run a client under another uid";
  Rule r;
  r.uid = kStranger;
  r.services = {"amp-*"};
  r.addresses = {{0x2000, 0x2fff}};
  start({r});
  {
    Connection c = connect();  // make sure the service is up before the child looks
    ASSERT_TRUE(c.wait_for(0, "amp-echo", 10s));
  }
  const pid_t child = spawn_client(socket_, {"stranger", std::to_string(kStranger), "amp-echo"});
  ASSERT_GT(child, 0);
  EXPECT_EQ(wait_client(child), 0) << "(5 setuid, 2 connect, 3 open, 4 echo, 6 a refusal that did not come)";
}

TEST_F(BrokerTest, AKilledClientLosesOnlyItsOwnEndpoints) {
  start();
  Connection mine = connect();
  EndpointFd ep = open_echo(mine);
  int out = -1;
  const pid_t child = spawn_client(socket_, {"forever", "amp-echo"}, &out);
  ASSERT_GT(child, 0);
  char ready[6] = {};
  ASSERT_EQ(::read(out, ready, 6), 6);  // "ready\n": it echoes from now on
  ::close(out);
  // Mid-stream: both echo, then the child dies.
  for (std::size_t i = 0; i < 200; ++i) ASSERT_EQ(round_trip(ep.fd.get(), pattern(32, i)), pattern(32, i));
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_client(child), -1);
  for (int i = 0; i < 100 && (broker_->client_count() != 1 || broker_->endpoint_count() != 1); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(broker_->client_count(), 1U);
  EXPECT_EQ(broker_->endpoint_count(), 1U) << "the killed client's endpoint was not destroyed";
  for (std::size_t i = 0; i < 200; ++i) ASSERT_EQ(round_trip(ep.fd.get(), pattern(64, i)), pattern(64, i));
}

TEST_F(BrokerTest, AnEndpointOutlivesItsConnectionAndEndsWithItsDescriptor) {
  // As /dev/rpmsgN outlives the /dev/rpmsg_ctrl descriptor that made it.
  start();
  EndpointFd ep;
  {
    Connection c = connect();
    ep = open_echo(c);
  }
  for (int i = 0; i < 50 && broker_->client_count() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(broker_->client_count(), 0U);
  EXPECT_EQ(round_trip(ep.fd.get(), "still open"), "still open");
  EXPECT_EQ(broker_->endpoint_count(), 1U);
  ep.fd = metal::UniqueFd();  // close(fd)
  for (int i = 0; i < 100 && broker_->endpoint_count() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(broker_->endpoint_count(), 0U) << "closing the descriptor did not end the endpoint";
}

TEST_F(BrokerTest, ARemoteThatCrashesEndsItsEndpointsAtOnceAndClientsReopenAfterRecovery) {
  start();
  Connection c = connect();
  EndpointFd ep = open_echo(c);
  ASSERT_EQ(round_trip(ep.fd.get(), "before"), "before");
  auto pid = broker_->remote_pid(0);
  ASSERT_TRUE(pid);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(*pid, SIGKILL), 0);
  pollfd p{ep.fd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the endpoint did not end";
  char buf[8];
  EXPECT_EQ(::recv(ep.fd.get(), buf, sizeof buf, 0), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "ended late";
  EXPECT_EQ(::send(ep.fd.get(), "x", 1, 0), -1);
  EXPECT_EQ(errno, EPIPE);
  std::byte in[512];
  auto r = client::read_message(ep, in, 1000ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kClosed);
  const std::byte one[1] = {std::byte{1}};
  auto w = client::write_message(ep, one);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().status, Status::kClosed);
  // Recovery restarts the firmware; its service is announced again and can be opened anew.
  EndpointFd again = open_echo(c);
  ASSERT_TRUE(again.fd.valid());
  EXPECT_EQ(round_trip(again.fd.get(), "after"), "after");
  auto pid2 = broker_->remote_pid(0);
  ASSERT_TRUE(pid2);
  EXPECT_NE(*pid2, *pid);
}

TEST_F(BrokerTest, AMalformedRequestIsRefusedAndTheClientGoesOn) {
  start();
  auto raw = metal::UnixSocket::connect(socket_, 5s, metal::SocketKind::kSeqPacket);
  ASSERT_TRUE(raw) << raw.error().message;
  const int fd = raw->fd();
  auto answer = [&](std::span<const std::byte> packet) {
    EXPECT_EQ(::send(fd, packet.data(), packet.size(), MSG_NOSIGNAL), static_cast<ssize_t>(packet.size()));
    std::byte in[64];
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return client::protocol::Message{};
    const ssize_t n = ::recv(fd, in, sizeof in, 0);
    auto m = client::protocol::decode(std::span(in, n > 0 ? static_cast<std::size_t>(n) : 0));
    EXPECT_TRUE(m);
    return m ? *m : client::protocol::Message{};
  };
  const std::byte garbage[5] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
  EXPECT_EQ(answer(garbage).status, Status::kMalformed);
  client::protocol::Message list;
  list.type = client::protocol::Type::kList;
  list.id = 7;
  std::byte out[client::protocol::kMaxMessage];
  auto n = client::protocol::encode(list, out);
  ASSERT_TRUE(n);
  const auto before_hello = answer(std::span(out, *n));
  EXPECT_EQ(before_hello.id, 7U);
  EXPECT_EQ(before_hello.status, Status::kInvalidArgument) << "kHello comes first";
  client::protocol::Message hello;
  hello.type = client::protocol::Type::kHello;
  hello.id = 8;
  n = client::protocol::encode(hello, out);
  ASSERT_TRUE(n);
  const auto greeted = answer(std::span(out, *n));
  EXPECT_EQ(greeted.status, Status::kOk);
  EXPECT_EQ(greeted.value, 1U);
}

}  // namespace
}  // namespace amp::ampd
