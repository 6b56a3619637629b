// SPDX-License-Identifier: BSD-3-Clause
// amp::client::Connection against a scripted fake ampd: the answers a real one gives, and every way a broken
// one can answer wrong.
#include "amp/client/linux/connection.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace amp::client {
namespace {

namespace proto = protocol;
using namespace std::chrono_literals;
using metal::SocketKind;
using metal::UnixSocket;

/// A fake ampd: listens on an abstract socket and runs `script` on the first client it accepts.
class FakeAmpd {
 public:
  using Script = std::function<void(UnixSocket&)>;
  explicit FakeAmpd(Script script)
      : path_("@amp-test-ampd-" + std::to_string(::getpid()) + "-" + std::to_string(next_++)) {
    auto l = metal::UnixListener::listen(path_, 4, SocketKind::kSeqPacket);
    EXPECT_TRUE(l) << l.error().message;
    listener_.emplace(std::move(*l));
    thread_ = std::thread([this, script = std::move(script)] {
      auto s = listener_->accept(5s);
      if (!s) return;
      script(*s);
      // Keep the connection until the test is done with it.
      std::array<std::byte, 64> b{};
      while (!done_.load()) {
        auto n = s->receive(b);
        if (!n || *n == 0) break;  // (0: the client hung up)
      }
    });
  }
  ~FakeAmpd() {
    done_.store(true);
    thread_.join();
  }
  const std::string& path() const { return path_; }

 private:
  static inline std::atomic<int> next_{0};
  std::string path_;
  std::optional<metal::UnixListener> listener_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// The next request on `s`, decoded.
proto::Message next_request(UnixSocket& s) {
  std::array<std::byte, proto::kMaxMessage> b{};
  auto n = s.receive(b);
  EXPECT_TRUE(n && *n > 0);
  auto m = proto::decode(std::span(b).first(n ? *n : 0));
  EXPECT_TRUE(m);
  return m.value_or(proto::Message{});
}
void send(UnixSocket& s, const proto::Message& m, std::span<const int> fds = {}) {
  std::array<std::byte, proto::kMaxMessage> b{};
  auto n = proto::encode(m, b);
  ASSERT_TRUE(n);
  ASSERT_TRUE(s.send(std::span(b).first(*n), fds));
}
proto::Message reply(const proto::Message& to, Status st = Status::kOk, std::uint32_t value = 0) {
  return {.type = proto::Type::kReply, .id = to.id, .status = st, .value = value};
}
proto::Name name(std::string_view s) {
  return *proto::Name::from(s);
}
/// Answers the hello as a version-1 ampd does.
void hello(UnixSocket& s) {
  const auto h = next_request(s);
  EXPECT_EQ(h.type, proto::Type::kHello);
  EXPECT_EQ(h.min_version, 1U);
  send(s, reply(h, Status::kOk, 1));
}

TEST(ClientConnection, ListWaitAndOpenAsAWorkingAmpdAnswersThem) {
  auto pair = UnixSocket::pair(SocketKind::kSeqPacket);
  ASSERT_TRUE(pair);
  FakeAmpd ampd([&](UnixSocket& s) {
    hello(s);
    auto r = next_request(s);
    EXPECT_EQ(r.type, proto::Type::kList);
    EXPECT_EQ(r.remote, proto::kAllRemotes);
    send(s, {.type = proto::Type::kRemote, .id = r.id, .remote = 0, .state = 2, .name = name("r5f-0")});
    send(s, {.type = proto::Type::kService, .id = r.id, .remote = 0, .dst = 0x400, .name = name("amp-echo")});
    send(s,
         {.type = proto::Type::kService, .id = r.id, .remote = 0, .dst = 0x401, .name = name("amp-matrix")});
    send(s, {.type = proto::Type::kRemote, .id = r.id, .remote = 1, .state = 4, .name = name("m4")});
    send(s, reply(r));
    r = next_request(s);
    EXPECT_EQ(r.type, proto::Type::kWait);
    EXPECT_EQ(r.name.view(), "amp-echo");
    EXPECT_EQ(r.timeout_ms, 2000U);
    send(s, {.type = proto::Type::kService, .id = r.id, .remote = 0, .dst = 0x400, .name = name("amp-echo")});
    send(s, reply(r));
    r = next_request(s);
    EXPECT_EQ(r.type, proto::Type::kOpen);
    EXPECT_EQ(r.name.view(), "amp-echo");
    EXPECT_EQ(r.dst, rpmsg::kAddrAny);
    proto::Message ok = reply(r, Status::kOk, 496);
    ok.local = 0x402;
    ok.dst = 0x400;
    const int fd = pair->second.fd();
    send(s, ok, std::span(&fd, 1));
  });
  auto c = Connection::connect(ampd.path(), 2s);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->version(), 1U);
  auto remotes = c->list(proto::kAllRemotes, 2s);
  ASSERT_TRUE(remotes) << remotes.error().message;
  ASSERT_EQ(remotes->size(), 2U);
  EXPECT_EQ((*remotes)[0].name, "r5f-0");
  EXPECT_EQ((*remotes)[0].state, rproc::State::kRunning);
  ASSERT_EQ((*remotes)[0].services.size(), 2U);
  EXPECT_EQ((*remotes)[0].services[1].name, "amp-matrix");
  EXPECT_EQ((*remotes)[0].services[1].addr, 0x401U);
  EXPECT_EQ((*remotes)[1].state, rproc::State::kCrashed);
  EXPECT_TRUE((*remotes)[1].services.empty());
  auto svc = c->wait_for(0, "amp-echo", 2s);
  ASSERT_TRUE(svc) << svc.error().message;
  EXPECT_EQ(svc->addr, 0x400U);
  auto ep = c->open(0, "amp-echo", 2s);
  ASSERT_TRUE(ep) << ep.error().message;
  EXPECT_EQ(ep->mtu, 496U);
  EXPECT_EQ(ep->local, 0x402U);
  EXPECT_EQ(ep->remote_addr, 0x400U);
  // The descriptor is the other end of what the fake kept: one message per write and read.
  ASSERT_EQ(::write(ep->fd.get(), "ping", 4), 4);
  std::array<std::byte, 16> got{};
  auto n = pair->first.receive(got);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 4U);
  EXPECT_FALSE(c->broken());
}

TEST(ClientConnection, AnAmpdThatSpeaksNoOfferedVersionIsRefused) {
  FakeAmpd ampd([](UnixSocket& s) {
    const auto h = next_request(s);
    send(s, reply(h, Status::kNotSupported));
  });
  auto c = Connection::connect(ampd.path(), 2s);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().status, Status::kNotSupported);
  EXPECT_NE(c.error().message.find("speaks no version of 1"), std::string::npos) << c.error().message;
}

/// A connected client whose next request the fake answers with `answer`; returns that call's error.
metal::SysError wrong_answer(const std::function<void(UnixSocket&, const proto::Message&)>& answer,
                             bool* broken = nullptr) {
  FakeAmpd ampd([&](UnixSocket& s) {
    hello(s);
    answer(s, next_request(s));
  });
  auto c = Connection::connect(ampd.path(), 2s);
  EXPECT_TRUE(c) << c.error().message;
  if (!c) return {};
  auto r = c->open(0, "amp-echo", 1s);
  EXPECT_FALSE(r);
  if (broken != nullptr) *broken = c->broken();
  if (c->broken()) {
    auto again = c->list(0, 100ms);
    EXPECT_FALSE(again);
    if (!again) {
      EXPECT_EQ(again.error().status, Status::kBroken);
    }
  }
  return r ? metal::SysError{} : r.error();
}

TEST(ClientConnection, AnswersOutOfStepAreErrorsThatBreakTheConnection) {
  bool broken = false;
  auto e =
      wrong_answer([](UnixSocket& s, const proto::Message& r) { send(s, reply({.id = r.id + 7})); }, &broken);
  EXPECT_EQ(e.status, Status::kMalformed);
  EXPECT_NE(e.message.find("answered id"), std::string::npos) << e.message;
  EXPECT_TRUE(broken);

  e = wrong_answer([](UnixSocket& s, const proto::Message&) {
    const std::array<std::byte, 5> garbage{};
    ASSERT_TRUE(s.send(garbage));
  });
  EXPECT_EQ(e.status, Status::kMalformed);
  EXPECT_NE(e.message.find("5 bytes that is not a message"), std::string::npos) << e.message;

  e = wrong_answer([](UnixSocket& s, const proto::Message& r) {
    send(s, {.type = proto::Type::kService, .id = r.id, .dst = 1, .name = name("x")});
  });
  EXPECT_EQ(e.status, Status::kMalformed) << "a list entry in answer to an open";
  EXPECT_NE(e.message.find("sent a service"), std::string::npos) << e.message;

  e = wrong_answer([](UnixSocket& s, const proto::Message& r) { send(s, reply(r, Status::kOk, 496)); });
  EXPECT_EQ(e.status, Status::kMalformed) << "an open answered without its descriptor";
  EXPECT_NE(e.message.find("0 descriptors, not 1"), std::string::npos) << e.message;

  e = wrong_answer([](UnixSocket& s, const proto::Message& r) {
    auto p = UnixSocket::pair(SocketKind::kSeqPacket);
    const int fd = p->first.fd();
    send(s, reply(r, Status::kOk, 0), std::span(&fd, 1));
  });
  EXPECT_EQ(e.status, Status::kMalformed);
  EXPECT_NE(e.message.find("MTU is 0"), std::string::npos) << e.message;
}

TEST(ClientConnection, AListWithADescriptorOrAServiceOutsideItsRemoteIsRefused) {
  const auto listed = [](const std::function<void(UnixSocket&, const proto::Message&)>& answer) {
    FakeAmpd ampd([&](UnixSocket& s) {
      hello(s);
      answer(s, next_request(s));
    });
    auto c = Connection::connect(ampd.path(), 2s);
    EXPECT_TRUE(c);
    auto r = c->list(proto::kAllRemotes, 1s);
    EXPECT_FALSE(r);
    EXPECT_TRUE(c->broken());
    return r ? metal::SysError{} : r.error();
  };
  auto e = listed([](UnixSocket& s, const proto::Message& r) {
    send(s, {.type = proto::Type::kService, .id = r.id, .remote = 3, .dst = 1, .name = name("x")});
    send(s, reply(r));
  });
  EXPECT_NE(e.message.find("outside that remote's entry"), std::string::npos) << e.message;
  e = listed([](UnixSocket& s, const proto::Message& r) {
    auto p = UnixSocket::pair(SocketKind::kSeqPacket);
    const int fd = p->first.fd();
    send(s, reply(r), std::span(&fd, 1));
  });
  EXPECT_EQ(e.status, Status::kMalformed) << e.message;
  e = listed([](UnixSocket& s, const proto::Message& r) {
    send(s, {.type = proto::Type::kRemote, .id = r.id, .remote = 0, .state = 99, .name = name("r")});
    send(s, reply(r));
  });
  EXPECT_NE(e.message.find("in state 99"), std::string::npos) << e.message;
}

TEST(ClientConnection, AnAmpdThatDoesNotAnswerOrHangsUpIsAnErrorWithinTheLimit) {
  {
    FakeAmpd ampd([](UnixSocket& s) { hello(s); });  // then reads and never answers
    auto c = Connection::connect(ampd.path(), 2s);
    ASSERT_TRUE(c);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c->open(0, "amp-echo", 200ms);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kTimeout);
    EXPECT_GE(took, 200ms);
    EXPECT_LT(took, 5s);
    EXPECT_TRUE(c->broken()) << "a late answer would be taken for the next request's";
  }
  {
    auto l = metal::UnixListener::listen("@amp-test-ampd-hangup-" + std::to_string(::getpid()), 4,
                                         SocketKind::kSeqPacket);
    ASSERT_TRUE(l);
    std::thread t([&] {
      auto s = l->accept(5s);
      if (s) (void)next_request(*s);  // the hello, then the socket closes
    });
    auto c = Connection::connect("@amp-test-ampd-hangup-" + std::to_string(::getpid()), 2s);
    t.join();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().status, Status::kClosed);
    EXPECT_NE(c.error().message.find("closed the connection"), std::string::npos) << c.error().message;
  }
}

TEST(ClientConnection, BadNamesAreRefusedBeforeAnythingIsSent) {
  std::atomic<int> requests{0};
  {
    FakeAmpd ampd([&](UnixSocket& s) {
      hello(s);
      std::array<std::byte, proto::kMaxMessage> b{};
      while (true) {
        auto n = s.receive(b);
        if (!n || *n == 0) break;
        ++requests;
      }
    });
    auto c = Connection::connect(ampd.path(), 2s);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->open(0, std::string(32, 'x'), 1s).error().status, Status::kInvalidArgument);
    EXPECT_EQ(c->open(0, "", 1s).error().status, Status::kInvalidArgument);
    EXPECT_EQ(c->create(0, std::string("a\0b", 3), rpmsg::kAddrAny, 1s).error().status,
              Status::kInvalidArgument);
    EXPECT_EQ(c->wait_for(0, "", 1s).error().status, Status::kInvalidArgument);
    EXPECT_EQ(c->open_address(0, rpmsg::kAddrAny, rpmsg::kAddrAny, 1s).error().status,
              Status::kInvalidArgument);
    EXPECT_FALSE(c->broken());
  }
  EXPECT_EQ(requests.load(), 0);
}

}  // namespace
}  // namespace amp::client
