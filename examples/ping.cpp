// SPDX-License-Identifier: BSD-3-Clause
// Ping (host): finds "amp-echo", sends N messages and checks that each comes back unchanged, then one of
// the largest payload the buffers agreed with the remote carry (512-byte buffers unless the remote declared
// others: echo's BUFFER_SIZE).
//   ping [SOCKET_PATH] [N]
#include <cstring>

#include "example_link.hpp"

int main(int argc, char** argv) {
  long count = 100;
  if (argc > 2 && !example::parse_number(argv[2], "ping: N", 1, 1'000'000'000, count)) return 2;
  auto link = example::host_link(argc > 1 ? argv[1] : "/tmp/amp-example.sock");
  if (!link) return 1;
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
  // One echo of `text`, checked.
  const auto echo = [&](const std::string& text, long i) {
    if (!ok(ep.send(std::as_bytes(std::span(text)), 1'000'000'000))) return false;
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return received == i; }) || last != text) {
      std::fprintf(stderr, "ping %ld: no or wrong echo\n", i);
      return false;
    }
    return true;
  };
  for (long i = 1; i <= count; ++i) {
    if (!echo("ping " + std::to_string(i), i)) return 3;
  }
  // The largest message, a pattern that a cut or a shifted copy would not keep.
  const std::uint32_t mtu = link->device().payload_size();
  std::string big(mtu, '\0');
  for (std::uint32_t k = 0; k < mtu; ++k) big[k] = static_cast<char>('a' + k % 23);
  if (!echo(big, count + 1)) return 3;
  std::printf("ping: %ld messages echoed, the largest of %u bytes\n", count, mtu);
  return 0;
}
