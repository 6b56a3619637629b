// SPDX-License-Identifier: BSD-3-Clause
// An rpmsg_char program, ported to ampd: the shape of TI's rpmsg_char_simple (open an endpoint, write a
// numbered message, read the reply, N times, close). Only open_endpoint() differs from the /dev/rpmsgN
// version, where it would be open("/dev/rpmsg_ctrl0") and RPMSG_CREATE_EPT_IOCTL; every read, write, poll
// and close below is what such a program already does with its descriptor (docs/ampd.md has the mapping).
//
//   rpmsg_char_simple [-s SOCKET] [-r REMOTE] [-e SERVICE] [-n COUNT]
//     defaults: ampd's default socket, remote 0, service amp-echo, 100 messages
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "amp/client/linux/connection.hpp"

namespace {

/// The port: an endpoint bound to `service` on `remote`, as a descriptor. -1 (and a message) on failure.
int open_endpoint(const std::string& socket, unsigned remote, const std::string& service) {
  using namespace std::chrono_literals;
  auto c = amp::client::Connection::connect(socket, 5s);
  if (!c) {
    std::fprintf(stderr, "rpmsg_char_simple: ampd at %s: %s\n", socket.c_str(), c.error().message.c_str());
    return -1;
  }
  if (auto s = c->wait_for(remote, service, 10s); !s) {
    std::fprintf(stderr, "rpmsg_char_simple: %s: %s\n", service.c_str(), s.error().message.c_str());
    return -1;
  }
  auto ep = c->open(remote, service, 5s);
  if (!ep) {
    std::fprintf(stderr, "rpmsg_char_simple: open %s: %s\n", service.c_str(), ep.error().message.c_str());
    return -1;
  }
  return ep->fd.release();  // the descriptor outlives the connection to ampd
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = amp::client::default_socket_path();
  unsigned remote = 0;
  std::string service = "amp-echo";
  int count = 100;
  for (int opt; (opt = ::getopt(argc, argv, "s:r:e:n:")) != -1;) {
    switch (opt) {
      case 's':
        socket = optarg;
        break;
      case 'r':
        remote = static_cast<unsigned>(std::strtoul(optarg, nullptr, 0));
        break;
      case 'e':
        service = optarg;
        break;
      case 'n':
        count = std::atoi(optarg);
        break;
      default:
        std::fprintf(stderr, "usage: rpmsg_char_simple [-s SOCKET] [-r REMOTE] [-e SERVICE] [-n COUNT]\n");
        return 2;
    }
  }

  const int fd = open_endpoint(socket, remote, service);
  if (fd < 0) return 1;

  // From here on, an rpmsg_char program as it is.
  char packet[512];
  int ok = 0;
  for (int i = 0; i < count; i++) {
    const int len = std::snprintf(packet, sizeof packet, "hello there %d!", i);
    if (write(fd, packet, static_cast<std::size_t>(len)) < 0) {
      std::perror("write");
      break;
    }
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) {
      std::fprintf(stderr, "no reply to message %d\n", i);
      break;
    }
    char reply[512];
    const ssize_t n = read(fd, reply, sizeof reply);
    if (n <= 0) {
      std::fprintf(stderr, "read: %s\n", n == 0 ? "the endpoint has ended" : std::strerror(errno));
      break;
    }
    if (n != len || std::memcmp(reply, packet, static_cast<std::size_t>(n)) != 0) {
      std::fprintf(stderr, "reply %d differs\n", i);
      break;
    }
    ++ok;
  }
  close(fd);
  std::printf("Communicated %d messages successfully on %s\n", ok, service.c_str());
  return ok == count ? 0 : 1;
}
