// SPDX-License-Identifier: BSD-3-Clause
// Scripted rpmsg peers for ampctl's tests (tests/tools/ampctl_process_test.py): the ones ampctl itself
// cannot play.
//   rpmsg_test_peer die-after PATH N   create the link on PATH (device role), serve "amp-echo", echo N
//                                      messages, then die (SIGKILL) on the next one without answering it
//   rpmsg_test_peer misbehave PATH     join the link on PATH (driver role), find "amp-echo", send it a
//                                      malformed name-service message (3 bytes to address 53), a message for
//                                      no endpoint, 3 good messages (checking each echo), then OpenAMP's
//                                      shutdown value; exit 0 when all echoes matched
//   rpmsg_test_peer stall PATH         connect to PATH and say nothing until the peer hangs up (at most 60 s)
// Exit codes: 0 as scripted, 1 something else happened, 2 bad arguments.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "amp/rpmsg/linux/link.hpp"

namespace {

using namespace std::chrono_literals;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::Role;

constexpr std::uint32_t kShutdownMagic = 0xEF56A55A;  // OpenAMP's echo demo stops on it
constexpr std::uint32_t kNowhere = 0x7777;            // an address with no endpoint

int fail(const std::string& what) {
  std::fprintf(stderr, "rpmsg_test_peer: %s\n", what.c_str());
  return 1;
}

int die_after(const std::string& path, long n) {
  std::optional<amp::metal::UnixSocket> conn;
  {
    auto listener = amp::metal::UnixListener::listen(path);
    if (!listener) return fail(listener.error().message);
    auto c = listener->accept(10s);
    if (!c) return fail(c.error().message);
    conn.emplace(std::move(*c));
  }  // the socket file goes with the listener: SIGKILL would leave it
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  auto link = Link::create(std::move(*conn), cfg);
  if (!link) return fail(link.error().message);
  Endpoint ep;
  long echoed = 0;
  const amp::Status s =
      (*link)->device().create_endpoint(ep, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                        [&echoed, n](Endpoint& self, const amp::rpmsg::Message& m) {
                                          if (echoed == n)
                                            kill(getpid(), SIGKILL);  // a remote that dies mid-conversation
                                          if (ok(self.send_to(m.src, m.payload, 1'000'000'000))) ++echoed;
                                        });
  if (!ok(s)) return fail(std::string("endpoint: ") + amp::to_string(s));
  (void)(*link)->wait_peer_gone(30s);
  return fail("the host hung up after " + std::to_string(echoed) + " messages, before the one to die on");
}

int misbehave(const std::string& path) {
  auto conn = amp::metal::UnixSocket::connect(path, 10s);
  if (!conn) return fail(conn.error().message);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  auto joined = Link::join(std::move(*conn), cfg);
  if (!joined) return fail(joined.error().message);
  Link& link = **joined;
  std::mutex m;
  std::condition_variable cv;
  std::optional<std::uint32_t> echo;
  std::vector<std::string> replies;
  link.device().set_name_service_handler([&](amp::rpmsg::Device&, std::string_view name, std::uint32_t addr) {
    std::lock_guard lock(m);
    if (name == "amp-echo") echo = addr;
    cv.notify_all();
  });
  Endpoint ep;  // unnamed: not announced
  const amp::Status s = link.device().create_endpoint(
      ep, "", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny, [&](Endpoint&, const amp::rpmsg::Message& msg) {
        std::lock_guard lock(m);
        replies.emplace_back(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
        cv.notify_all();
      });
  if (!ok(s)) return fail(std::string("endpoint: ") + amp::to_string(s));
  std::uint32_t to = 0;
  {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 10s, [&] { return echo.has_value(); })) return fail("no 'amp-echo' announced");
    to = *echo;
  }
  const char bad_ns[3] = {'b', 'a', 'd'};  // a name-service message is 40 bytes
  if (!ok(ep.send_to(amp::rpmsg::kNsAddress, std::as_bytes(std::span(bad_ns)), 1'000'000'000)))
    return fail("sending the malformed name-service message");
  if (!ok(ep.send_to(kNowhere, std::as_bytes(std::span(bad_ns)), 1'000'000'000)))
    return fail("sending to no endpoint");
  for (int i = 0; i < 3; ++i) {
    const std::string text = "good " + std::to_string(i);
    if (!ok(ep.send_to(to, std::as_bytes(std::span(text)), 1'000'000'000))) return fail("sending " + text);
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 5s, [&] { return replies.size() > static_cast<std::size_t>(i); }))
      return fail("no echo of '" + text + "'");
    if (replies.back() != text) return fail("the echo of '" + text + "' is '" + replies.back() + "'");
  }
  const std::uint32_t magic = kShutdownMagic;
  if (!ok(ep.send_to(to, std::as_bytes(std::span(&magic, 1)), 1'000'000'000)))
    return fail("sending shutdown");
  (void)link.wait_peer_gone(10s);
  ep.destroy();
  link.close();
  return 0;
}

int stall(const std::string& path) {
  auto conn = amp::metal::UnixSocket::connect(path, 10s);
  if (!conn) return fail(conn.error().message);
  std::puts("connected");  // the test waits for this before it sends the next client
  std::fflush(stdout);
  pollfd p{conn->fd(), POLLRDHUP, 0};  // not POLLIN: what the peer sends is ignored, unread
  (void)::poll(&p, 1, 60000);          // until the peer gives up on us and hangs up
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "die-after" && argc == 4) return die_after(argv[2], std::atol(argv[3]));
  if (mode == "misbehave" && argc == 3) return misbehave(argv[2]);
  if (mode == "stall" && argc == 3) return stall(argv[2]);
  std::fprintf(stderr, "usage: rpmsg_test_peer die-after PATH N | misbehave PATH | stall PATH\n");
  return 2;
}
