// SPDX-License-Identifier: BSD-3-Clause
// A remote that misbehaves on purpose, for the kernel test `kernel.faults` (tests/kernel/uml_test.py): amp
// as the source of faults and the kernel as their oracle. It serves one vhost-user front end with amp's rpmsg
// device and, once the driver is ready, announces a good echo service (rpmsg-raw), then sends the kernel
// what a broken remote would:
//   ns39       a name-service message of 39 bytes          kernel: "malformed ns msg (39)"
//   ns41       one of 41 bytes                             kernel: "malformed ns msg (41)"
//   nobody     a message to an address nobody owns         kernel: "msg received with no recipient"
//   any        an announcement of the address RPMSG_ADDR_ANY (the kernel takes it: "creating channel
//              amp-fault-any addr 0xffffffff", a channel nothing can write to)
//   unknown    a destroy of a channel never announced
// and goes on echoing, so that the guest shows the kernel is still well. Each fault is also one amp checks
// when it receives it (tests/rpmsg/device_test.cpp, the Malformed cases): what the kernel says here is the
// oracle for those checks.
//
// Usage: fault_remote SOCKET      (prints "listening", one line per fault sent, "done" when the front end left)
#include <array>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "amp/rpmsg/linux/vhost_user_server.hpp"
#include "amp/rpmsg/wire.hpp"

namespace {

using amp::Status;
using amp::rpmsg::Device;
using amp::rpmsg::Endpoint;

/// A name-service message's 40 bytes: name, address, flags.
std::array<std::byte, amp::rpmsg::kNsMessageSize> ns(const char* name, std::uint32_t addr, std::uint32_t flags) {
  std::array<std::byte, amp::rpmsg::kNsMessageSize> m{};
  std::memcpy(m.data(), name, std::strlen(name));
  std::memcpy(m.data() + amp::rpmsg::kNameSize, &addr, 4);
  std::memcpy(m.data() + amp::rpmsg::kNameSize + 4, &flags, 4);
  return m;
}

void sent(const char* what, Status s) {
  std::printf("%s %s\n", what, amp::to_string(s));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fault_remote SOCKET\n");
    return 2;
  }
  Endpoint echo;
  std::mutex m;
  std::condition_variable cv;
  bool gone = false;
  amp::rpmsg::VhostUserServer::Callbacks cb;
  cb.on_ready = [&](Device& d) {
    const Status s = d.create_endpoint(echo, "rpmsg-raw", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                       [](Endpoint& e, const amp::rpmsg::Message& msg) {
                                         (void)e.send_to(msg.src, msg.payload, 1'000'000'000);
                                       });
    sent("echo", s);
    const std::uint32_t me = echo.address();
    const auto whole = ns("amp-fault", me, amp::rpmsg::kNsCreate);
    std::array<std::byte, amp::rpmsg::kNsMessageSize + 1> longer{};
    std::memcpy(longer.data(), whole.data(), whole.size());
    sent("ns39", echo.send_offchannel(me, amp::rpmsg::kNsAddress, std::span(whole).first(39), 1'000'000'000));
    sent("ns41", echo.send_offchannel(me, amp::rpmsg::kNsAddress, longer, 1'000'000'000));
    static const char kNobody[] = "to nobody";
    sent("nobody", echo.send_offchannel(me, 0x7777, std::as_bytes(std::span(kNobody)), 1'000'000'000));
    sent("any", echo.send_offchannel(me, amp::rpmsg::kNsAddress,
                                     ns("amp-fault-any", amp::rpmsg::kAddrAny, amp::rpmsg::kNsCreate),
                                     1'000'000'000));
    sent("unknown", echo.send_offchannel(me, amp::rpmsg::kNsAddress,
                                         ns("amp-never-announced", 0x9999, amp::rpmsg::kNsDestroy),
                                         1'000'000'000));
  };
  cb.on_gone = [&](Device&) { echo.destroy(); };
  cb.on_disconnected = [&](const std::string& why) {
    if (!why.empty()) std::printf("error %s\n", why.c_str());
    std::lock_guard lock(m);
    gone = true;
    cv.notify_all();
  };
  amp::rpmsg::VhostUserServerConfig cfg;
  cfg.socket_path = argv[1];
  cfg.reconnect = false;
  auto server = amp::rpmsg::VhostUserServer::listen(cfg, std::move(cb));
  if (!server) {
    std::fprintf(stderr, "fault_remote: %s\n", server.error().message.c_str());
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(120), [&] { return gone; })) {
      std::fprintf(stderr, "fault_remote: no front end came and went within 120 s\n");
      return 1;
    }
  }
  (*server)->stop();
  std::printf("done\n");
  return 0;
}
