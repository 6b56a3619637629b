// SPDX-License-Identifier: BSD-3-Clause
// Echo (remote): announces "amp-echo" and sends every message back to its sender.
//   echo [SOCKET_PATH [WAIT_SECONDS [BUFFER_SIZE]]]
// (default /tmp/amp-example.sock, 30 s, 512 bytes per buffer; start it before `ping`). BUFFER_SIZE goes
// through the negotiation (VIRTIO_RPMSG_F_BUFSZ): `ping` sends its largest message to what it agreed.
#include "example_link.hpp"

int main(int argc, char** argv) {
  long wait = 30;
  long buffer_size = amp::rpmsg::kDefaultBufferSize;
  if (argc > 2 && !example::parse_number(argv[2], "echo: WAIT_SECONDS", 1, 3600, wait)) return 2;
  if (argc > 3 && !example::parse_number(argv[3], "echo: BUFFER_SIZE", 24, 65544, buffer_size)) return 2;
  if (buffer_size % 8 != 0) {
    std::fprintf(stderr, "echo: BUFFER_SIZE must be a multiple of 8, not %ld\n", buffer_size);
    return 2;
  }
  auto link = example::remote_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock", std::chrono::seconds(wait),
                                   static_cast<std::uint32_t>(buffer_size));
  if (!link) return 1;
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link->device().create_endpoint(
      ep, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) { (void)self.send_to(m.src, m.payload); });
  if (!ok(s)) return 1;
  example::serve_until_host_leaves(*link);
  return 0;
}
