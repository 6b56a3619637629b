// SPDX-License-Identifier: BSD-3-Clause
// Echo (remote): announces "amp-echo" and sends every message back to its sender.
//   echo [SOCKET_PATH [WAIT_SECONDS]]   (default /tmp/amp-example.sock, 30 s; start it before `ping`)
#include "example_link.hpp"

int main(int argc, char** argv) {
  const std::chrono::seconds wait(argc > 2 ? std::atoi(argv[2]) : 30);
  auto link = example::remote_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock", wait);
  if (!link) return 1;
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link->device().create_endpoint(
      ep, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) { (void)self.send_to(m.src, m.payload); });
  if (!ok(s)) return 1;
  example::serve_until_host_leaves(*link);
  return 0;
}
