// SPDX-License-Identifier: BSD-3-Clause
// Ping (host): finds "amp-echo", sends N messages and checks that each comes back unchanged.
//   ping [SOCKET_PATH] [N]
#include <cstring>

#include "example_link.hpp"

int main(int argc, char** argv) {
  auto link = example::host_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock");
  if (!link) return 1;
  const int count = argc > 2 ? std::atoi(argv[2]) : 100;
  const std::uint32_t remote = example::find_service(*link, "amp-echo");
  if (remote == amp::rpmsg::kAddrAny) return 1;

  std::mutex m;
  std::condition_variable cv;
  std::string last;
  int received = 0;
  amp::rpmsg::Endpoint ep;
  if (!ok(link->device().create_endpoint(
          ep, "", amp::rpmsg::kAddrAny, remote, [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& msg) {
            std::lock_guard lock(m);
            last.assign(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
            ++received;
            cv.notify_all();
          }))) {
    return 1;
  }
  for (int i = 1; i <= count; ++i) {
    const std::string text = "ping " + std::to_string(i);
    if (!ok(ep.send(std::as_bytes(std::span(text)), 1'000'000'000))) return 2;
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return received == i; }) || last != text) {
      std::fprintf(stderr, "ping %d: no or wrong echo\n", i);
      return 3;
    }
  }
  std::printf("ping: %d messages echoed\n", count);
  return 0;
}
