// SPDX-License-Identifier: BSD-3-Clause
// A client process for tests/ampd/broker_test.cpp: started with exec, so that it shares nothing with the
// test's threads (a fork of a threaded process is unsafe under the sanitizers' allocators).
//
//   ampd_test_client SOCKET echo SERVICE SEED      echo every size 1..MTU, then exit 0
//   ampd_test_client SOCKET forever SERVICE        say "ready" on stdout, then echo until killed
//   ampd_test_client SOCKET stranger UID SERVICE   as UID: SERVICE opens and echoes; opening its address
//                                                  and creating a name are refused
// Exit status: 0 success; 1 usage; 2 connect; 3 open; 4 an echo wrong or missing; 5 setuid; 6 a refusal
// that did not come.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "amp/client/linux/connection.hpp"

namespace {

using namespace std::chrono_literals;

bool echo(int fd, const std::string& m) {
  if (::send(fd, m.data(), m.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(m.size())) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 20000) != 1) return false;
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n == static_cast<ssize_t>(m.size()) && std::string(buf, static_cast<std::size_t>(n)) == m;
}

std::string pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i + seed) % 26);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 1;
  const std::string socket = argv[1];
  const std::string mode = argv[2];
  if (mode == "stranger") {
    if (argc != 5) return 1;
    const auto uid = static_cast<uid_t>(std::strtoul(argv[3], nullptr, 10));
    if (::setgid(uid) != 0 || ::setuid(uid) != 0) return 5;
  }
  const std::string service = mode == "stranger" ? argv[4] : argv[3];
  auto c = amp::client::Connection::connect(socket, 10s);
  if (!c) return 2;
  auto ep = c->open(0, service, 10s);
  if (!ep) return 3;
  if (mode == "echo") {
    const std::size_t seed = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 0;
    for (std::size_t n = 1; n <= ep->mtu; ++n) {
      if (!echo(ep->fd.get(), pattern(n, seed + n))) return 4;
    }
    return 0;
  }
  if (mode == "forever") {
    std::printf("ready\n");
    std::fflush(stdout);
    for (std::size_t i = 0;; ++i) {
      if (!echo(ep->fd.get(), pattern(1 + i % 400, i))) return 4;
    }
  }
  if (mode == "stranger") {
    if (!echo(ep->fd.get(), "from a stranger")) return 4;
    auto by_addr = c->open_address(0, ep->remote_addr, amp::rpmsg::kAddrAny, 10s);
    if (by_addr || by_addr.error().status != amp::Status::kPermissionDenied) return 6;
    auto create = c->create(0, "mine", amp::rpmsg::kAddrAny, 10s);
    if (create || create.error().status != amp::Status::kPermissionDenied) return 6;
    return 0;
  }
  return 1;
}
