// SPDX-License-Identifier: BSD-3-Clause
// Echo (remote): announces "amp-echo" and sends every message back to its sender.
//   echo [SOCKET_PATH]     (default /tmp/amp-example.sock; start it before `ping`)
#include "example_link.hpp"

int main(int argc, char** argv) {
  auto link = example::remote_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock");
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link->device().create_endpoint(
      ep, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) { (void)self.send_to(m.src, m.payload); });
  if (!ok(s)) return 1;
  example::serve_until_host_leaves(*link);
  return 0;
}
