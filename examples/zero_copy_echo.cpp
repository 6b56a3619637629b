// SPDX-License-Identifier: BSD-3-Clause
// Zero-copy echo (remote): keeps each received buffer past its callback, takes a transmit buffer, writes
// the reply straight into shared memory and sends it without another copy.
//   zero_copy_echo [SOCKET_PATH]     (pair it with `ping`)
#include <algorithm>
#include <cstring>

#include "example_link.hpp"

int main(int argc, char** argv) {
  auto link = example::remote_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock");
  if (!link) return 1;
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link->device().create_endpoint(
      ep, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) {
        amp::rpmsg::RxBuffer in = m.hold();  // the received bytes stay where the peer wrote them
        auto out = self.get_tx_buffer(1'000'000'000);
        if (!out) return;
        const auto data = in.payload();
        std::copy(data.begin(), data.end(), out->payload().begin());  // the echo's one unavoidable copy
        (void)self.send_nocopy_to(in.src(), *out, data.size());
        // `in` goes back to the peer here; an unsent `out` would have gone back to the pool.
      });
  if (!ok(s)) return 1;
  example::serve_until_host_leaves(*link);
  return 0;
}
