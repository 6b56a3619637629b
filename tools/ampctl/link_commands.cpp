// SPDX-License-Identifier: BSD-3-Clause
// ampctl's commands over an rpmsg::Link between two processes:
//   demo   start an emulated remote process serving echo, find it by name service, ping it, summarise
//   echo   serve an echo endpoint (either role; amp's link or the openamp-linux preset)
//   ping   find an echo service, send messages of every size, check every echo, summarise
#include "link_commands.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ampd_commands.hpp"
#include "link_options.hpp"
#include "ping.hpp"
#include "signals.hpp"
#include "text.hpp"
#include "vhost_user.hpp"

namespace ampctl {

namespace {

using amp::Status;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;

constexpr int kJoinFd = 3;  // where `demo` hands the socket to the remote it starts

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- echo ------------------------------------------------------------------------------------------------

struct EchoOptions {
  CommonOptions common;
  LinkOptions link;
  VhostUserOptions vhost_user;
  bool quiet = false;
};

/// Why echo stopped serving.
enum class EchoEnd : int { kNone, kShutdown, kUnbind, kHangUp };

const char* to_string(EchoEnd e, bool interrupted) {
  switch (e) {
    case EchoEnd::kShutdown:
      return "shutdown";
    case EchoEnd::kUnbind:
      return "unbind";
    case EchoEnd::kHangUp:
      return "hang-up";
    case EchoEnd::kNone:
      break;
  }
  return interrupted ? "interrupted" : "unknown";
}

const char* describe(EchoEnd e, bool interrupted) {
  switch (e) {
    case EchoEnd::kShutdown:
      return "the peer sent the shutdown value";
    case EchoEnd::kUnbind:
      return "the peer destroyed its endpoint";
    case EchoEnd::kHangUp:
      return "the peer hung up";
    case EchoEnd::kNone:
      break;
  }
  return interrupted ? "interrupted" : "stopped";
}

int run_echo(const EchoOptions& o) {
  if (given(o.vhost_user.given_socket)) {
    const auto& g = o.link.given;
    refuse_given({g.listen, g.connect, g.join_fd, g.preset, g.index, g.socket, g.shm, g.notify, g.ring_size,
                  g.buffer_size},
                 "not with --vhost-user (the front end sets the rings and buffers up)");
    if (o.link.role != Role::kDevice)
      usage_error("--vhost-user serves the device role (the guest is the driver)");
    return run_vhost_user_echo(o.vhost_user, o.common, o.link.service.empty() ? "rpmsg-raw" : o.link.service,
                               o.quiet);
  }
  refuse_given({o.vhost_user.given_event_idx, o.vhost_user.given_connections}, "only with --vhost-user");
  check_link_options(o.link);
  auto link = open_link(o.link);
  const std::string service = service_name(o.link);
  amp::rpmsg::Device& device = link->device();
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> echoed{0};
  std::atomic<EchoEnd> ended{EchoEnd::kNone};
  const auto end = [&ended](EchoEnd why) {
    EchoEnd none = EchoEnd::kNone;
    ended.compare_exchange_strong(none, why);  // the first reason is the one
    g_wake.set();
  };
  Endpoint ep;
  const Status s = device.create_endpoint(
      ep, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [&received, &echoed, &end](Endpoint& e, const amp::rpmsg::Message& m) {
        ++received;
        std::uint32_t magic = 0;
        if (m.payload.size() == sizeof magic) std::memcpy(&magic, m.payload.data(), sizeof magic);
        if (magic == kShutdownMagic) {
          end(EchoEnd::kShutdown);
          return;
        }
        if (ok(e.send_to(m.src, m.payload, 1'000'000'000))) ++echoed;
      },
      // The peer destroyed its endpoint (a name-service destroy; the device still runs), or the link went
      // down (the device stopped first).
      [&device, &end](Endpoint&) { end(device.running() ? EchoEnd::kUnbind : EchoEnd::kHangUp); });
  if (!ok(s)) die(std::string("creating the echo endpoint: ") + amp::to_string(s));
  if (!o.quiet) {
    std::fprintf(stderr, "ampctl echo: serving '%s' at address %u (%s role, %s)\n",
                 printable(service).c_str(), ep.address(), amp::rpmsg::to_string(link->role()),
                 amp::rpmsg::to_string(link->notify_mode()));
  }
  set_interruptible(true);
  g_wake.wait();  // asleep until the shutdown value, an unbind, a hang-up or a signal
  ep.destroy();
  const amp::rpmsg::Stats stats = device.stats();
  link->close();
  const EchoEnd why = ended.load();
  if (o.common.json) {
    Json j;
    j["command"] = "echo";
    j["service"] = json_bytes(service);
    j["role"] = amp::rpmsg::to_string(link->role());
    j["notify"] = amp::rpmsg::to_string(link->notify_mode());
    j["received"] = received.load();
    j["echoed"] = echoed.load();
    j["rx_malformed"] = stats.rx_malformed;
    j["rx_unroutable"] = stats.rx_unroutable;
    j["ended"] = to_string(why, interrupted());
    print_json(j);
  } else if (!o.quiet) {
    std::fprintf(
        stderr,
        "ampctl echo: %llu messages echoed of %llu received; dropped by the device: %llu malformed, %llu "
        "unroutable; %s\n",
        static_cast<unsigned long long>(echoed.load()), static_cast<unsigned long long>(received.load()),
        static_cast<unsigned long long>(stats.rx_malformed),
        static_cast<unsigned long long>(stats.rx_unroutable), describe(why, interrupted()));
  }
  return 0;
}

// ---- ping ------------------------------------------------------------------------------------------------

struct PingOptions {
  CommonOptions common;
  LinkOptions link;
  long rounds = 1;
  bool shutdown = false;
  std::string via;  // "ampd": through ampd's socket (--socket), not a link of its own
  long remote = 0;
  long wait_ms = 0;
  CLI::Option* remote_given = nullptr;
  CLI::Option* wait_given = nullptr;
};

/// `ampctl ping --via ampd`: the echo service of one of ampd's remotes, through ampd.
int run_ping_via_ampd(const PingOptions& o) {
  const auto& g = o.link.given;
  if (given(g.listen) || given(g.connect) || given(g.join_fd) || given(g.preset) || given(g.index) ||
      given(g.shm) || given(g.notify) || given(g.ring_size) || given(g.buffer_size)) {
    usage_error(
        "--via ampd: ampd owns the remote and its link; give only --socket, --remote, --service, --wait");
  }
  const std::string path = given(g.socket) ? o.link.socket : ampd_socket_path("");
  const std::string service = o.link.service.empty() ? "amp-echo" : o.link.service;
  constexpr std::chrono::seconds kTimeout{5};
  auto c = amp::client::Connection::connect(path, kTimeout);
  if (!c) die("ampd at " + path + ": " + c.error().message);
  const auto remote = static_cast<std::uint32_t>(o.remote);
  if (o.wait_ms > 0) {
    set_interruptible(true);
    auto s = c->wait_for(remote, service, std::chrono::milliseconds(o.wait_ms));
    set_interruptible(false);
    if (!s) die("waiting for '" + printable(service) + "': " + s.error().message);
  }
  auto ep = c->open(remote, service, kTimeout);
  if (!ep) die("opening '" + printable(service) + "' through ampd: " + ep.error().message);
  const auto t0 = std::chrono::steady_clock::now();
  const Summary s = ping_endpoint(*ep, o.rounds, o.shutdown);
  const double secs = seconds_since(t0);
  Json extra;
  extra["via"] = "ampd";
  extra["mtu"] = ep->mtu;
  print_summary("ping", s, secs, o.common.json, extra);
  return exit_code(s);
}

int run_ping(const PingOptions& o) {
  if (o.via == "ampd") return run_ping_via_ampd(o);
  if (given(o.remote_given) || given(o.wait_given)) usage_error("--remote and --wait are for --via ampd");
  check_link_options(o.link);
  auto link = open_link(o.link);
  const auto t0 = std::chrono::steady_clock::now();
  const Summary s = ping(*link, service_name(o.link), o.rounds, o.shutdown);
  const double secs = seconds_since(t0);
  link->close();
  print_summary("ping", s, secs, o.common.json);
  return exit_code(s);
}

// ---- demo ------------------------------------------------------------------------------------------------

struct DemoOptions {
  CommonOptions common;
  NotifyMode notify = NotifyMode::kEventFd;
  long rounds = 1;
};

/// The emulated remote: this program, `ampctl echo` in the device role, joined over `socket`. It ignores
/// SIGINT (a Ctrl-C reaches the whole process group): the host decides when it ends, by hanging up.
class EmulatedRemote {
 public:
  EmulatedRemote(amp::metal::UnixSocket socket, int verbose) {
    pid_ = fork();
    if (pid_ < 0) die(std::string("fork: ") + std::strerror(errno));
    if (pid_ != 0) return;
    std::signal(SIGINT, SIG_IGN);
    // dup2 onto itself would keep the close-on-exec flag: clear it then.
    if (socket.fd() == kJoinFd ? fcntl(kJoinFd, F_SETFD, 0) < 0 : dup2(socket.fd(), kJoinFd) < 0) _exit(127);
    std::vector<std::string> args = {
        "ampctl", "echo", "--role", "device", "--join-fd", std::to_string(kJoinFd), "--quiet"};
    for (int i = 0; i < verbose; ++i) args.emplace_back("--verbose");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  EmulatedRemote(const EmulatedRemote&) = delete;
  EmulatedRemote& operator=(const EmulatedRemote&) = delete;
  /// On a way out that did not wait for it: it is stopped and reaped.
  ~EmulatedRemote() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }

  pid_t pid() const { return pid_; }
  /// Waits for it to end; true when it exited with status 0.
  bool wait_ok() {
    int status = 0;
    const pid_t p = pid_;
    pid_ = -1;
    return waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

 private:
  pid_t pid_ = -1;
};

int run_demo(const DemoOptions& o) {
  // Every step before the ping is bounded (the remote is ours): a signal during them, too, ends the demo
  // with a summary marked interrupted.
  set_interruptible(true);
  auto socks = amp::metal::UnixSocket::pair();
  if (!socks) die(socks.error().message);
  EmulatedRemote remote(std::move(socks->second), o.common.verbose);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  cfg.notify = o.notify;
  auto link = Link::create(std::move(socks->first), cfg);
  if (!link) die("bringing up the link to the emulated remote: " + link.error().message);
  if (!o.common.json) {
    std::printf(
        "amp demo: host (virtio driver) pid %d, emulated remote (virtio device) pid %d, %s notifications\n",
        getpid(), remote.pid(), amp::rpmsg::to_string(o.notify));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Summary s = ping(**link, "amp-echo", o.rounds, false);
  const double secs = seconds_since(t0);
  (*link)->close();
  link->reset();  // hang up: the remote exits
  if (!remote.wait_ok()) {
    ++s.errors;
    if (s.first_error.empty()) s.first_error = "the emulated remote did not exit cleanly";
  }
  Json extra;
  extra["notify"] = amp::rpmsg::to_string(o.notify);
  print_summary("demo", s, secs, o.common.json, extra);
  return exit_code(s);
}

// ---- help ------------------------------------------------------------------------------------------------

const char* const kDemoHelp =
    R"(usage: ampctl demo [--notify eventfd|socket|poll|adaptive] [--rounds N] [--json] [-v]

Starts an emulated remote process (this program, 'ampctl echo', in the virtio device role) joined by a
memfd and the chosen notifications; the host finds its echo service through the name service, sends
messages of every size from 1 byte to the MTU (N rounds), checks every echo and prints a summary (--json:
one object). Exit code 0 when every echo matched; on SIGINT/SIGTERM it stops, prints the summary so far
marked interrupted ("interrupted": true) and exits 128 + the signal (130 for Ctrl-C).
)";

std::string echo_help() {
  return std::string(R"(usage: ampctl echo LINK-OPTIONS [--quiet] [--json]

Serves an echo endpoint, announced by name, until the peer hangs up, destroys its endpoint (unbinds) or
sends OpenAMP's shutdown value, or until SIGINT/SIGTERM; every message is sent back to its sender.
--json prints what was served as one object: the service, role and notifications, messages received and
echoed, what the rpmsg device dropped (rx_malformed, rx_unroutable) and why it ended ("ended": shutdown,
unbind, hang-up or interrupted). A socket file of --listen is removed on every way out.

)") + kLinkOptionsHelp +
         kVhostUserHelp;
}

std::string ping_help() {
  return std::string(R"(usage: ampctl ping LINK-OPTIONS [--rounds N] [--shutdown] [--json]
       ampctl ping --via ampd [--socket PATH] [--remote N] [--service NAME] [--wait MS] [--rounds N] [--json]

Finds the echo service, sends messages of every size 1..MTU (N rounds), checks every echo. The host's
endpoint is announced by the service's name, so the remote sees it come and, at the end, go. A remote
that hangs up or destroys its endpoint ends the ping at once (exit code 1). --shutdown sends OpenAMP's
shutdown value at the end. On SIGINT/SIGTERM: the summary so far, marked interrupted, exit 128 + N.
--via ampd: the service (default amp-echo) of ampd's remote N (default 0), through ampd's socket (--socket,
default $AMPD_SOCKET, else ampd's default: docs/ampd.md); --wait MS waits for the service to be announced.
Every size up to the endpoint's MTU is echoed and checked, then a message one byte larger must be refused.

)") + kLinkOptionsHelp;
}

}  // namespace

void add_link_commands(CLI::App& root, std::vector<Command>& commands) {
  {
    auto o = std::make_shared<DemoOptions>();
    CLI::App* app = add_command(root, "demo", "an emulated remote, pinged", kDemoHelp, o->common);
    add_notify_option(*app, o->notify);
    add_number(*app, "--rounds", o->rounds, 1, 1000000);
    commands.push_back({app, &o->common, [o] { return run_demo(*o); }});
  }
  {
    auto o = std::make_shared<EchoOptions>();
    CLI::App* app = add_command(root, "echo", "serve an echo endpoint", echo_help(), o->common);
    add_link_options(*app, o->link, Role::kDevice);
    add_vhost_user_options(*app, o->vhost_user);
    app->add_flag("--quiet", o->quiet);
    commands.push_back({app, &o->common, [o] { return run_echo(*o); }});
  }
  {
    auto o = std::make_shared<PingOptions>();
    CLI::App* app = add_command(root, "ping", "ping an echo service", ping_help(), o->common);
    add_link_options(*app, o->link, Role::kDriver);
    add_number(*app, "--rounds", o->rounds, 1, 1000000);
    app->add_flag("--shutdown", o->shutdown);
    add_parsed(*app, "--via", "ampd", [o](const std::string& s) {
      if (s != "ampd") usage_error("--via is ampd, not '" + s + "'");
      o->via = s;
    });
    o->remote_given = add_number(*app, "--remote", o->remote, 0, 0xFFFFFFFE);
    o->wait_given = add_number(*app, "--wait", o->wait_ms, 0, 3'600'000);
    commands.push_back({app, &o->common, [o] { return run_ping(*o); }});
  }
}

}  // namespace ampctl
