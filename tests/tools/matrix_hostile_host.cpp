// SPDX-License-Identifier: BSD-3-Clause
// A hostile host for examples/matrix_multiply's remote (a test): it sends messages that are not requests
// (wrong lengths, matrix sizes over 6 or 0, unequal sizes) between good requests, each built byte by byte at
// the offsets of OpenAMP's layout (not from examples/matrix.hpp, so the layout is checked too). The remote
// must refuse every bad one without a reply and keep serving: replies come in order, so each good request's
// product must be the next reply. Ends with the shutdown value, after which the remote must exit.
//   matrix_hostile_host SOCKET_PATH      (the remote: matrix_multiply remote SOCKET_PATH)
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "example_link.hpp"

namespace {

using Bytes = std::vector<std::byte>;
constexpr std::size_t kRequestSize = 296;  // two matrices
constexpr std::size_t kMatrixSize = 148;   // u32 size, then u32 elements[6][6], row by row

void put32(Bytes& b, std::size_t at, std::uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
}

std::uint32_t element_a(std::size_t i, std::size_t j) {
  return static_cast<std::uint32_t>(3 * i + j + 1);
}
std::uint32_t element_b(std::size_t i, std::size_t j) {
  return static_cast<std::uint32_t>(i * j + 2);
}

/// A request with these size fields; its elements are filled in all 6x6.
Bytes request(std::uint32_t size_a, std::uint32_t size_b) {
  Bytes b(kRequestSize);
  put32(b, 0, size_a);
  put32(b, kMatrixSize, size_b);
  for (std::size_t i = 0; i < 6; ++i) {
    for (std::size_t j = 0; j < 6; ++j) {
      put32(b, 4 + 4 * (6 * i + j), element_a(i, j));
      put32(b, kMatrixSize + 4 + 4 * (6 * i + j), element_b(i, j));
    }
  }
  return b;
}

/// The reply to request(n, n): the n x n product, zeros elsewhere.
Bytes product(std::uint32_t n) {
  Bytes b(kMatrixSize);
  put32(b, 0, n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      std::uint32_t sum = 0;
      for (std::size_t k = 0; k < n; ++k) sum += element_a(i, k) * element_b(k, j);
      put32(b, 4 + 4 * (6 * i + j), sum);
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: matrix_hostile_host SOCKET_PATH\n");
    return 2;
  }
  auto link = example::host_link(argv[1]);
  if (!link) return 1;
  const std::uint32_t remote = example::find_service(*link, "amp-matrix");
  if (remote == amp::rpmsg::kAddrAny) return 1;
  std::mutex m;
  std::condition_variable cv;
  std::vector<Bytes> replies;
  amp::rpmsg::Endpoint ep;
  if (!ok(link->device().create_endpoint(ep, "", amp::rpmsg::kAddrAny, remote,
                                         [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& msg) {
                                           std::lock_guard lock(m);
                                           replies.emplace_back(msg.payload.begin(), msg.payload.end());
                                           cv.notify_all();
                                         }))) {
    return 1;
  }
  auto send = [&](const Bytes& b) { return ok(ep.send(b, 1'000'000'000)); };

  Bytes longer = request(6, 6);
  longer.push_back(std::byte{0});  // 297 bytes
  Bytes shorter = request(6, 6);
  shorter.pop_back();  // 295
  Bytes too_long = request(6, 6);
  too_long.resize(link->device().payload_size());  // the most a message holds: OpenAMP's remote crashes
  const std::vector<Bytes> bad = {
      longer,        shorter,       too_long,      Bytes(kMatrixSize),
      Bytes{},       Bytes(3),      request(7, 7), request(0xFFFFFFFF, 0xFFFFFFFF),
      request(0, 0), request(6, 5), request(7, 6)};
  const std::uint32_t sizes[] = {6, 3, 1, 6};
  int products = 0;
  int refused = 0;
  for (const std::uint32_t n : sizes) {
    for (const Bytes& b : bad) {
      if (!send(b)) return 2;
      ++refused;
    }
    if (!send(request(n, n))) return 2;
    std::unique_lock lock(m);
    const std::size_t want = static_cast<std::size_t>(products) + 1;
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return replies.size() >= want; })) {
      std::fprintf(stderr, "hostile host: no product for a good request of size %u\n", n);
      return 3;
    }
    if (replies[want - 1] != product(n)) {
      std::fprintf(stderr,
                   "hostile host: reply %zu (%zu bytes) is not the product of size %u: a bad message "
                   "was answered\n",
                   want, replies[want - 1].size(), n);
      return 3;
    }
    ++products;
  }
  Bytes stop(4);
  put32(stop, 0, 0xEF56A55A);
  if (!send(stop)) return 2;
  // The remote ends: the link goes down (it may take a moment for the remote's hang-up to arrive).
  if (!link->wait_peer_gone(std::chrono::seconds(10))) {
    std::fprintf(stderr, "hostile host: the remote did not stop on the shutdown value\n");
    return 4;
  }
  std::lock_guard lock(m);
  std::printf("hostile host: %d bad messages refused, %d products right, %zu replies\n", refused, products,
              replies.size());
  return replies.size() == static_cast<std::size_t>(products) ? 0 : 3;
}
