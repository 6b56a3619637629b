// SPDX-License-Identifier: BSD-3-Clause
// Matrix multiply, as in OpenAMP's demo: the host sends two 6x6 matrices in one message, the remote returns
// their product. Both sides in one program:
//   matrix_multiply remote [SOCKET_PATH]
//   matrix_multiply host [SOCKET_PATH] [ROUNDS]
#include <array>
#include <cstring>
#include <random>

#include "example_link.hpp"

namespace {

constexpr std::size_t kN = 6;
using Matrix = std::array<std::array<std::uint32_t, kN>, kN>;
struct Request {
  std::uint32_t n;
  Matrix a, b;
};
static_assert(sizeof(Request) <= 496, "one rpmsg message");

Matrix multiply(const Matrix& a, const Matrix& b) {
  Matrix c{};
  for (std::size_t i = 0; i < kN; ++i)
    for (std::size_t j = 0; j < kN; ++j)
      for (std::size_t k = 0; k < kN; ++k) c[i][j] += a[i][k] * b[k][j];
  return c;
}

int remote(const std::string& path) {
  auto link = example::remote_link(path);
  if (!link) return 1;
  amp::rpmsg::Endpoint ep;
  const amp::Status s =
      link->device().create_endpoint(ep, "amp-matrix", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                     [](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) {
                                       Request req;
                                       if (m.payload.size() != sizeof req)
                                         return;  // not a request: ignore it
                                       std::memcpy(&req, m.payload.data(), sizeof req);
                                       if (req.n != kN) return;
                                       const Matrix c = multiply(req.a, req.b);
                                       (void)self.send_to(m.src, std::as_bytes(std::span(&c, 1)));
                                     });
  if (!ok(s)) return 1;
  example::serve_until_host_leaves(*link);
  return 0;
}

int host(const std::string& path, int rounds) {
  auto link = example::host_link(path);
  if (!link) return 1;
  const std::uint32_t addr = example::find_service(*link, "amp-matrix");
  if (addr == amp::rpmsg::kAddrAny) return 1;
  std::mutex m;
  std::condition_variable cv;
  Matrix result{};
  bool got = false;
  amp::rpmsg::Endpoint ep;
  if (!ok(link->device().create_endpoint(ep, "", amp::rpmsg::kAddrAny, addr,
                                         [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& msg) {
                                           std::lock_guard lock(m);
                                           if (msg.payload.size() == sizeof result)
                                             std::memcpy(&result, msg.payload.data(), sizeof result);
                                           got = true;
                                           cv.notify_all();
                                         }))) {
    return 1;
  }
  std::mt19937 rng(42);
  for (int r = 0; r < rounds; ++r) {
    Request req{kN, {}, {}};
    for (auto& row : req.a)
      for (auto& v : row) v = static_cast<std::uint32_t>(rng() % 100);
    for (auto& row : req.b)
      for (auto& v : row) v = static_cast<std::uint32_t>(rng() % 100);
    {
      std::lock_guard lock(m);
      got = false;
    }
    if (!ok(ep.send(std::as_bytes(std::span(&req, 1)), 1'000'000'000))) return 2;
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return got; }) ||
        result != multiply(req.a, req.b)) {
      std::fprintf(stderr, "round %d: wrong or no product\n", r);
      return 3;
    }
  }
  std::printf("matrix multiply: %d products checked\n", rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string role = argc > 1 ? argv[1] : "";
  const std::string path = argc > 2 ? argv[2] : "/tmp/amp-matrix.sock";
  if (role == "remote") return remote(path);
  if (role == "host") return host(path, argc > 3 ? std::atoi(argv[3]) : 10);
  std::fprintf(stderr, "usage: matrix_multiply remote|host [SOCKET_PATH] [ROUNDS]\n");
  return 2;
}
