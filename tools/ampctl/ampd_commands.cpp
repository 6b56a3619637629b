// SPDX-License-Identifier: BSD-3-Clause
#include "ampd_commands.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "amp/client/linux/connection.hpp"
#include "amp/client/linux/endpoint_io.hpp"
#include "amp/rproc/lifecycle.hpp"
#include "signals.hpp"
#include "text.hpp"

namespace ampctl {

namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 5s;

struct AmpdOptions {
  CommonOptions common;
  std::string socket;
  long remote = 0;
  std::string service;
  long wait_ms = 0;
  long linger_ms = 1000;
};

const char* const kServicesHelp = R"(usage: ampctl services [--socket PATH] [--json]

The remotes ampd serves, their states, and the services each announced. --socket: ampd's socket (default:
$AMPD_SOCKET, else ampd's default: docs/ampd.md). With --json: a list of {"remote","name","state",
"services":[{"name","addr"}]}.
)";

const char* const kOpenHelp = R"(usage: ampctl open SERVICE [--remote N] [--wait MS] [--socket PATH]

An endpoint bound to SERVICE on remote N (default 0), through ampd: each line on stdin is sent as one
message (without its newline; a line longer than the MTU is refused with an error and not sent), and each
message received is written to stdout followed by a newline (bytes a terminal should not see escaped).
--wait MS: wait up to MS for the service to be announced first. At the end of stdin it goes on printing
what arrives until nothing has for --linger MS (default 1000), then ends (exit code 0); it ends at once
when the endpoint ends (its remote went away: exit code 1) and on SIGINT/SIGTERM.
)";

amp::client::Connection connect(const AmpdOptions& o) {
  const std::string path = ampd_socket_path(o.socket);
  auto c = amp::client::Connection::connect(path, kTimeout);
  if (!c) die("ampd at " + path + ": " + c.error().message);
  return std::move(*c);
}

int run_services(const AmpdOptions& o) {
  amp::client::Connection c = connect(o);
  auto remotes = c.list(amp::client::protocol::kAllRemotes, kTimeout);
  if (!remotes) die("listing the remotes: " + remotes.error().message);
  if (o.common.json) {
    Json list = Json::array();
    for (const auto& r : *remotes) {
      Json services = Json::array();
      for (const auto& s : r.services) services.push_back({{"name", json_bytes(s.name)}, {"addr", s.addr}});
      list.push_back({{"remote", r.index},
                      {"name", json_bytes(r.name)},
                      {"state", amp::rproc::to_string(r.state)},
                      {"services", services}});
    }
    print_json(list);
    return 0;
  }
  if (remotes->empty()) std::printf("no remotes\n");
  for (const auto& r : *remotes) {
    std::printf("%u %-16s %s\n", r.index, printable(r.name).c_str(), amp::rproc::to_string(r.state));
    for (const auto& s : r.services) std::printf("    %-32s at %u\n", printable(s.name).c_str(), s.addr);
  }
  return 0;
}

int run_open(const AmpdOptions& o) {
  amp::client::Connection c = connect(o);
  const auto remote = static_cast<std::uint32_t>(o.remote);
  if (o.wait_ms > 0) {
    set_interruptible(true);
    auto s = c.wait_for(remote, o.service, std::chrono::milliseconds(o.wait_ms));
    set_interruptible(false);
    if (!s) die("waiting for '" + printable(o.service) + "': " + s.error().message);
  }
  auto ep = c.open(remote, o.service, kTimeout);
  if (!ep) die("opening '" + printable(o.service) + "': " + ep.error().message);
  std::fprintf(stderr, "ampctl: '%s' open: local %u, remote %u, MTU %u\n", printable(o.service).c_str(),
               ep->local, ep->remote_addr, ep->mtu);
  set_interruptible(true);
  std::string line;
  std::vector<std::byte> in(ep->mtu + std::size_t{1});
  bool stdin_open = true;
  for (;;) {
    pollfd p[3] = {{ep->fd.get(), POLLIN, 0}, {interrupt_fd(), POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    const int ready = ::poll(p, 3, stdin_open ? -1 : static_cast<int>(o.linger_ms));
    if (ready < 0) {
      if (errno == EINTR) continue;
      die(std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) return 0;  // stdin ended, and nothing more came for --linger
    if (interrupted()) return interrupted_exit_code();
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      auto n = amp::client::read_message(*ep, in, 0ms);
      if (!n) {
        if (n.error().status == amp::Status::kClosed) die("the endpoint ended (its remote went away)");
        die(n.error().message);
      }
      const std::string text = printable(std::string_view(reinterpret_cast<const char*>(in.data()), *n));
      std::printf("%s\n", text.c_str());
      std::fflush(stdout);
    }
    if (stdin_open && (p[2].revents & (POLLIN | POLLHUP)) != 0) {
      char buf[4096];
      const ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) {
        stdin_open = false;  // the end of stdin: what is still on its way is printed, for --linger
        continue;
      }
      line.append(buf, static_cast<std::size_t>(n));
      for (auto nl = line.find('\n'); nl != std::string::npos; nl = line.find('\n')) {
        const std::string msg = line.substr(0, nl);
        line.erase(0, nl + 1);
        auto w = amp::client::write_message(*ep, std::as_bytes(std::span(msg)));
        if (!w) {
          if (w.error().status == amp::Status::kClosed) die("the endpoint ended (its remote went away)");
          print_error("not sent: " + w.error().message);
        }
      }
    }
  }
}

}  // namespace

std::string ampd_socket_path(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* s = std::getenv("AMPD_SOCKET"); s != nullptr && *s != '\0') return s;
  return amp::client::default_socket_path();
}

void add_ampd_commands(CLI::App& root, std::vector<Command>& commands) {
  {
    auto o = std::make_shared<AmpdOptions>();
    CLI::App* app =
        add_command(root, "services", "list ampd's remotes and services", kServicesHelp, o->common);
    add_text(*app, "--socket", o->socket, "PATH");
    commands.push_back({app, &o->common, [o] { return run_services(*o); }});
  }
  {
    auto o = std::make_shared<AmpdOptions>();
    CLI::App* app =
        add_command(root, "open", "an endpoint through ampd on stdin/stdout", kOpenHelp, o->common);
    app->add_option("SERVICE", o->service, "the service's name")->required();
    add_text(*app, "--socket", o->socket, "PATH");
    add_number(*app, "--remote", o->remote, 0, 0xFFFFFFFE);
    add_number(*app, "--wait", o->wait_ms, 0, 3'600'000);
    add_number(*app, "--linger", o->linger_ms, 0, 3'600'000);
    commands.push_back({app, &o->common, [o] { return run_open(*o); }});
  }
}

}  // namespace ampctl
