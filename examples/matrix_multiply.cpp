// SPDX-License-Identifier: BSD-3-Clause
// Matrix multiply, OpenAMP's demo: the host sends two matrices in one message, the remote returns their
// product (the protocol is in matrix_protocol.hpp). Both sides in one program:
//   matrix_multiply remote [--preset openamp-linux [--shm NAME]] [SOCKET_PATH]
//   matrix_multiply host   [--preset openamp-linux [--shm NAME]] [--rounds N] [SOCKET_PATH]
// amp's link over SOCKET_PATH (default /tmp/amp-matrix.sock), service "amp-matrix"; or with the preset
// OpenAMP's PC layout (socket /tmp/openamp.event.0, POSIX shm openamp.shm) and its service
// "rpmsg-openamp-demo-channel", so that either side may be OpenAMP's (matrix_multiplyd, matrix_multiply).
// The remote refuses, without a reply, any message that is not a request (OpenAMP's copies it unchecked).
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <semaphore>
#include <vector>

#include "example_link.hpp"
#include "matrix.hpp"

namespace {

using amp::rpmsg::kAddrAny;

struct Options {
  std::string side;  // "remote" or "host"
  bool openamp = false;
  std::string socket;  // "" = the default of the mode
  std::string shm = "openamp.shm";
  int rounds = 10;

  const char* service() const { return openamp ? matrix::kOpenAmpService : matrix::kAmpService; }
  std::unique_ptr<amp::rpmsg::Link> link(amp::rpmsg::Role role) const {
    if (openamp) return example::openamp_link(role, socket.empty() ? "/tmp/openamp.event.0" : socket, shm);
    const std::string path = socket.empty() ? "/tmp/amp-matrix.sock" : socket;
    return role == amp::rpmsg::Role::kDevice ? example::remote_link(path) : example::host_link(path);
  }
};

int remote(const Options& o) {
  auto link = o.link(amp::rpmsg::Role::kDevice);
  if (!link) return 1;
  std::counting_semaphore<> done(0);  // the shutdown value, or the host's endpoint (or the host) gone
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link->device().create_endpoint(
      ep, o.service(), kAddrAny, kAddrAny,
      [&done](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) {
        if (matrix::is_shutdown(m.payload)) {
          done.release();
          return;
        }
        matrix::Request req;
        if (const std::string why = matrix::read_request(m.payload, req); !why.empty()) {
          // No reply: the host takes any 148 bytes back for a product.
          std::fprintf(stderr, "matrix_multiply: refused a message from %u: %s\n", m.src, why.c_str());
          return;
        }
        const matrix::Matrix product = matrix::multiply(req.operands[0], req.operands[1]);
        (void)self.send_to(m.src, std::as_bytes(std::span(&product, 1)));
      },
      [&done](amp::rpmsg::Endpoint&) { done.release(); });
  if (!ok(s)) return 1;
  done.acquire();
  return 0;
}

int host(const Options& o) {
  auto link = o.link(amp::rpmsg::Role::kDriver);
  if (!link) return 1;
  const std::uint32_t addr = example::find_service(*link, o.service());
  if (addr == kAddrAny) return 1;
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::byte> reply;
  bool got = false;
  amp::rpmsg::Endpoint ep;
  if (!ok(link->device().create_endpoint(ep, "", kAddrAny, addr,
                                         [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& msg) {
                                           std::lock_guard lock(m);
                                           reply.assign(msg.payload.begin(), msg.payload.end());
                                           got = true;
                                           cv.notify_all();
                                         }))) {
    return 1;
  }
  std::mt19937 rng(42);
  for (int r = 0; r < o.rounds; ++r) {
    matrix::Request req{};
    for (matrix::Matrix& a : req.operands) {
      a.size = matrix::kMaxSize;
      for (auto& row : a.elements)
        for (auto& v : row) v = static_cast<std::uint32_t>(rng() % 10);
    }
    {
      std::lock_guard lock(m);
      got = false;
    }
    if (!ok(ep.send(std::as_bytes(std::span(&req, 1)), 1'000'000'000))) return 2;
    const matrix::Matrix want = matrix::multiply(req.operands[0], req.operands[1]);
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return got; }) || reply.size() != sizeof want ||
        std::memcmp(reply.data(), &want, sizeof want) != 0) {
      std::fprintf(stderr, "round %d: wrong or no product\n", r);
      return 3;
    }
  }
  const std::uint32_t stop = matrix::kShutdown;
  (void)ep.send(std::as_bytes(std::span(&stop, 1)), 1'000'000'000);
  std::printf("matrix multiply: %d products checked\n", o.rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.side = argc > 1 ? argv[1] : "";
  bool ok_args = o.side == "remote" || o.side == "host";
  for (int i = 2; ok_args && i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--preset" && has_value && std::string(argv[i + 1]) == "openamp-linux") {
      o.openamp = true;
      ++i;
    } else if (a == "--shm" && has_value) {
      o.shm = argv[++i];
    } else if (a == "--rounds" && has_value) {
      long rounds = 0;
      if (!example::parse_number(argv[++i], "matrix_multiply: --rounds", 1, 1'000'000, rounds)) return 2;
      o.rounds = static_cast<int>(rounds);
    } else if (a.rfind("--", 0) != 0 && o.socket.empty()) {
      o.socket = a;
    } else {
      ok_args = false;
    }
  }
  if (!ok_args) {
    std::fprintf(stderr,
                 "usage: matrix_multiply remote|host [--preset openamp-linux [--shm NAME]] [--rounds N] "
                 "[SOCKET_PATH]\n");
    return 2;
  }
  return o.side == "remote" ? remote(o) : host(o);
}
