// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/unix_socket.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/event_fd.hpp"

namespace amp::metal {
namespace {

using namespace std::chrono_literals;

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string to_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// Open descriptors of this process (the directory's own descriptor counts the same each time).
std::size_t count_open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

bool is_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

std::string unique_abstract_name() {
  static std::atomic<int> counter{0};
  return "@amp-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/amp-unix-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const char* name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// ---- pairs and descriptor passing ----

TEST_F(UnixSocketTest, PairOfEachKindCarriesData) {
  for (const SocketKind kind : {SocketKind::kStream, SocketKind::kSeqPacket, SocketKind::kDatagram}) {
    auto p = UnixSocket::pair(kind);
    ASSERT_TRUE(p) << p.error().what();
    auto& [a, b] = *p;
    EXPECT_TRUE(is_cloexec(a.fd()));
    auto sent = a.send(bytes("ping"));
    ASSERT_TRUE(sent) << sent.error().what();
    EXPECT_EQ(*sent, 4U);
    std::byte buf[16];
    auto got = b.receive(buf);
    ASSERT_TRUE(got) << got.error().what();
    EXPECT_EQ(to_string(std::span(buf, *got)), "ping");
  }
}

TEST_F(UnixSocketTest, PassesAnEventFdAndAMemfdThatReferToTheSameObjects) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  auto& [a, b] = *p;
  auto event = EventFd::create();
  ASSERT_TRUE(event);
  UniqueFd mem(::memfd_create("amp-test", MFD_CLOEXEC));
  ASSERT_TRUE(mem);
  ASSERT_EQ(::ftruncate(mem.get(), 4096), 0);

  const int to_send[] = {event->fd(), mem.get()};
  auto sent = a.send(bytes("fds"), to_send);
  ASSERT_TRUE(sent) << sent.error().what();

  std::byte buf[8];
  std::vector<UniqueFd> fds;
  auto got = b.receive(buf, &fds);
  ASSERT_TRUE(got) << got.error().what();
  EXPECT_EQ(to_string(std::span(buf, *got)), "fds");
  ASSERT_EQ(fds.size(), 2U);
  EXPECT_NE(fds[0].get(), event->fd());  // new descriptors...
  EXPECT_NE(fds[1].get(), mem.get());
  EXPECT_TRUE(is_cloexec(fds[0].get()));  // ...with MSG_CMSG_CLOEXEC
  EXPECT_TRUE(is_cloexec(fds[1].get()));

  // ...for the same eventfd: a kick through one is seen through the other, both ways.
  auto remote = EventFd::adopt(std::move(fds[0]));
  ASSERT_TRUE(remote) << remote.error().what();
  ASSERT_EQ(remote->signal(5), Status::kOk);
  EXPECT_EQ(event->consume().value(), 5U);
  ASSERT_EQ(event->signal(2), Status::kOk);
  EXPECT_EQ(remote->consume().value(), 2U);

  // ...and the same memory.
  ASSERT_EQ(::pwrite(mem.get(), "hello", 5, 100), 5);
  void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1].get(), 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* bytes_of = static_cast<char*>(map);
  EXPECT_EQ(std::string(bytes_of + 100, 5), "hello");
  std::memcpy(bytes_of + 200, "world", 5);
  char back[5] = {};
  ASSERT_EQ(::pread(mem.get(), back, 5, 200), 5);
  EXPECT_EQ(std::string(back, 5), "world");
  ASSERT_EQ(::munmap(map, 4096), 0);
}

TEST_F(UnixSocketTest, DescriptorsNeedData) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  const int fds[] = {0};
  auto sent = p->first.send({}, fds);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().status, Status::kInvalidArgument);
}

TEST_F(UnixSocketTest, TooManyDescriptorsAreAllClosedAndReported) {
  auto p = UnixSocket::pair(SocketKind::kSeqPacket);
  ASSERT_TRUE(p);
  auto& [a, b] = *p;
  auto event = EventFd::create();
  ASSERT_TRUE(event);
  std::vector<int> three(3, event->fd());
  std::vector<int> twenty(20, event->fd());
  const std::size_t baseline = count_open_fds();
  std::byte buf[8];

  // One more than allowed: received, counted, all closed.
  ASSERT_TRUE(a.send(bytes("a"), three));
  std::vector<UniqueFd> fds;
  auto r1 = b.receive(buf, &fds, 2);
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().status, Status::kMalformed);
  EXPECT_NE(r1.error().what().find("sent 3 descriptors, 2 expected"), std::string::npos) << r1.error().what();
  EXPECT_TRUE(fds.empty());
  EXPECT_EQ(count_open_fds(), baseline);

  // Far more than the control buffer holds: truncated by the kernel (MSG_CTRUNC); what did arrive is closed.
  ASSERT_TRUE(a.send(bytes("b"), twenty));
  auto r2 = b.receive(buf, &fds, 2);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().status, Status::kMalformed);
  EXPECT_NE(r2.error().what().find("truncated"), std::string::npos) << r2.error().what();
  EXPECT_TRUE(fds.empty());
  EXPECT_EQ(count_open_fds(), baseline);

  // Descriptors nobody asked for.
  ASSERT_TRUE(a.send(bytes("c"), three));
  auto r3 = b.receive(buf);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().status, Status::kMalformed);
  EXPECT_EQ(count_open_fds(), baseline);

  // The socket is still usable afterwards.
  ASSERT_TRUE(a.send(bytes("d"), std::span(three.data(), 1)));
  auto r4 = b.receive(buf, &fds, 2);
  ASSERT_TRUE(r4) << r4.error().what();
  EXPECT_EQ(fds.size(), 1U);
  EXPECT_EQ(count_open_fds(), baseline + 1);
}

TEST_F(UnixSocketTest, TruncatedMessageIsAnError) {
  auto p = UnixSocket::pair(SocketKind::kDatagram);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->first.send(bytes("0123456789")));
  std::byte small[4];
  auto r = p->second.receive(small);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kOutOfRange);
}

TEST_F(UnixSocketTest, EndOfStream) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  auto& [a, b] = *p;
  ASSERT_TRUE(a.send(bytes("ab")));
  a.release().reset();  // close a
  std::byte buf[4];
  EXPECT_EQ(b.receive_exact(buf), Status::kClosed);  // only 2 of 4 bytes came
  auto r = b.receive(buf);
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(*r, 0U);  // EOF
}

TEST_F(UnixSocketTest, SendToAClosedPeerIsClosedWithoutSigpipe) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  p->second.release().reset();
  auto r = p->first.send(bytes("x"));  // SIGPIPE would kill the test program
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kClosed);
}

TEST_F(UnixSocketTest, NonBlockingReceiveWouldBlock) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  ASSERT_EQ(p->second.set_nonblocking(true), Status::kOk);
  std::byte buf[4];
  auto r = p->second.receive(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kWouldBlock);
  ASSERT_EQ(p->second.set_nonblocking(false), Status::kOk);
  EXPECT_EQ(::fcntl(p->second.fd(), F_GETFL) & O_NONBLOCK, 0);
}

TEST_F(UnixSocketTest, SendAllAndReceiveExactMoveLargeBuffersWithDescriptors) {
  auto p = UnixSocket::pair();
  ASSERT_TRUE(p);
  UnixSocket& b = p->second;
  std::vector<std::byte> data(1 << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7 + i / 251);
  auto event = EventFd::create();
  ASSERT_TRUE(event);
  const int fds_out[] = {event->fd()};
  Status send_status = Status::kInternal;
  std::thread sender([&] { send_status = p->first.send_all(data, fds_out); });
  std::vector<std::byte> in(data.size());
  std::vector<UniqueFd> fds;
  EXPECT_EQ(b.receive_exact(in, &fds), Status::kOk);
  sender.join();
  EXPECT_EQ(send_status, Status::kOk);
  EXPECT_EQ(in, data);
  ASSERT_EQ(fds.size(), 1U);
}

// ---- listeners ----

void exchange(UnixListener& listener, const std::string& address) {
  auto client = UnixSocket::connect(address);
  ASSERT_TRUE(client) << client.error().what();
  auto server = listener.accept(10s);
  ASSERT_TRUE(server) << server.error().what();
  ASSERT_EQ(client->send_all(bytes("hello")), Status::kOk);
  std::byte buf[5];
  ASSERT_EQ(server->receive_exact(buf), Status::kOk);
  EXPECT_EQ(to_string(buf), "hello");
  ASSERT_EQ(server->send_all(bytes("world")), Status::kOk);
  ASSERT_EQ(client->receive_exact(buf), Status::kOk);
  EXPECT_EQ(to_string(buf), "world");
}

TEST_F(UnixSocketTest, ListenConnectAcceptOnAPathAndRemoveTheFile) {
  const std::string p = path("server.sock");
  {
    auto listener = UnixListener::listen(p);
    ASSERT_TRUE(listener) << listener.error().what();
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    exchange(*listener, p);
  }
  EXPECT_FALSE(std::filesystem::exists(p));  // the destructor removed its socket file
}

TEST_F(UnixSocketTest, ListenConnectAcceptOnAnAbstractName) {
  const std::string name = unique_abstract_name();
  auto listener = UnixListener::listen(name);
  ASSERT_TRUE(listener) << listener.error().what();
  exchange(*listener, name);
  EXPECT_FALSE(std::filesystem::exists(name));  // no file named "@..." appears
  auto second = UnixListener::listen(name);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().status, Status::kAlreadyExists);
}

TEST_F(UnixSocketTest, SeqPacketListenerKeepsMessageBoundaries) {
  const std::string p = path("seq.sock");
  auto listener = UnixListener::listen(p, 4, SocketKind::kSeqPacket);
  ASSERT_TRUE(listener) << listener.error().what();
  auto client = UnixSocket::connect(p, 0ms, SocketKind::kSeqPacket);
  ASSERT_TRUE(client) << client.error().what();
  auto server = listener->accept(10s);
  ASSERT_TRUE(server);
  ASSERT_TRUE(client->send(bytes("one")));
  ASSERT_TRUE(client->send(bytes("two")));
  std::byte buf[16];
  auto r = server->receive(buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(to_string(std::span(buf, *r)), "one");
}

TEST_F(UnixSocketTest, ConnectWithoutServerNamesThePath) {
  const std::string p = path("nobody.sock");
  auto c = UnixSocket::connect(p);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().status, Status::kNotFound);
  EXPECT_EQ(c.error().sys_errno, ENOENT);
  EXPECT_EQ(c.error().what().rfind("connect " + p + ": No such file or directory", 0), 0U)
      << c.error().what();

  auto retried = UnixSocket::connect(p, 30ms);
  ASSERT_FALSE(retried);
  EXPECT_EQ(retried.error().status, Status::kNotFound);
  EXPECT_NE(retried.error().what().find("retried for 30 ms"), std::string::npos) << retried.error().what();
}

TEST_F(UnixSocketTest, ConnectRetriesUntilTheServerListens) {
  const std::string p = path("late.sock");
  std::atomic<bool> trying{false};
  SysResult<UnixSocket> client = sys_fail(Status::kInternal, "not run");
  std::thread t([&] {
    trying = true;
    client = UnixSocket::connect(p, 10s);
  });
  while (!trying) std::this_thread::yield();
  // Let the client fail a few attempts first. Correctness does not depend on this delay: the client
  // must connect whether the server comes before or after its first attempt.
  std::this_thread::sleep_for(30ms);
  auto listener = UnixListener::listen(p);
  ASSERT_TRUE(listener) << listener.error().what();
  auto server = listener->accept(10s);
  t.join();
  ASSERT_TRUE(client) << client.error().what();
  ASSERT_TRUE(server) << server.error().what();
  ASSERT_EQ(client->send_all(bytes("late")), Status::kOk);
  std::byte buf[4];
  ASSERT_EQ(server->receive_exact(buf), Status::kOk);
  EXPECT_EQ(to_string(buf), "late");
}

TEST_F(UnixSocketTest, AcceptTimesOut) {
  const std::string p = path("quiet.sock");
  auto listener = UnixListener::listen(p);
  ASSERT_TRUE(listener);
  auto s = listener->accept(20ms);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().status, Status::kTimeout);
  EXPECT_NE(s.error().what().find(p), std::string::npos) << s.error().what();
  auto now = listener->accept(0ms);
  ASSERT_FALSE(now);
  EXPECT_EQ(now.error().status, Status::kTimeout);
}

TEST_F(UnixSocketTest, StaleSocketFileIsReused) {
  const std::string p = path("stale.sock");
  {
    // A server that died without removing its socket file.
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(s);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, p.c_str(), p.size() + 1);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(s.get(), 1), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(p));
  auto refused = UnixSocket::connect(p);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().sys_errno, ECONNREFUSED);
  EXPECT_NE(refused.error().what().find("connect " + p + ": Connection refused"), std::string::npos);

  auto listener = UnixListener::listen(p);
  ASSERT_TRUE(listener) << listener.error().what();
  exchange(*listener, p);
}

TEST_F(UnixSocketTest, LiveListenerIsNotTakenOver) {
  const std::string p = path("live.sock");
  auto first = UnixListener::listen(p);
  ASSERT_TRUE(first);
  auto second = UnixListener::listen(p);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().status, Status::kAlreadyExists);
  EXPECT_NE(second.error().what().find("another process is listening"), std::string::npos)
      << second.error().what();
  // Drain the probe connection the second listen() made, then the first listener still works.
  auto probe = first->accept(10s);
  ASSERT_TRUE(probe);
  exchange(*first, p);
}

TEST_F(UnixSocketTest, OtherFilesAreNeverRemoved) {
  const std::string p = path("data.txt");
  { std::ofstream(p) << "keep me"; }
  auto listener = UnixListener::listen(p);
  ASSERT_FALSE(listener);
  EXPECT_EQ(listener.error().status, Status::kAlreadyExists);
  EXPECT_NE(listener.error().what().find("not a socket"), std::string::npos) << listener.error().what();
  std::ifstream in(p);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST_F(UnixSocketTest, MovedListenerRemovesTheFileOnce) {
  const std::string p = path("moved.sock");
  auto listener = UnixListener::listen(p);
  ASSERT_TRUE(listener);
  {
    UnixListener owner = std::move(*listener);
    EXPECT_TRUE(std::filesystem::exists(p));  // the moved-from one is gone... (destroyed later)
    exchange(owner, p);
  }
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST_F(UnixSocketTest, BadAddressesAreRejected) {
  auto empty = UnixListener::listen("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().status, Status::kInvalidArgument);
  const std::string long_path = dir_ + "/" + std::string(200, 'x');
  auto too_long = UnixSocket::connect(long_path);
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().status, Status::kInvalidArgument);
  EXPECT_NE(too_long.error().what().find("shorter path"), std::string::npos) << too_long.error().what();
  auto dgram = UnixListener::listen(path("d.sock"), 4, SocketKind::kDatagram);
  ASSERT_FALSE(dgram);
  EXPECT_EQ(dgram.error().status, Status::kInvalidArgument);
}

}  // namespace
}  // namespace amp::metal
