// SPDX-License-Identifier: BSD-3-Clause
// ampctl: amp's command-line tool.
//
//   ampctl demo   start an emulated remote process serving echo, find it by name service, exchange
//                 messages of every size and print a summary
//   ampctl echo   serve an echo endpoint (either role; amp link or the openamp-linux preset)
//   ampctl ping   find an echo service, send messages, check every echo, print a summary
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"
#include "amp/rpmsg/linux/link.hpp"
#include "common.hpp"
#include "lifecycle.hpp"
#include "run.hpp"

namespace {

using namespace ampctl;
using namespace std::chrono_literals;
using amp::Status;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;

constexpr const char* kDefaultService = "amp-echo";
constexpr const char* kOpenAmpService = "rpmsg-openamp-demo-channel";
constexpr int kJoinFd = 3;  // where `demo` hands the socket to the remote it starts

// ---- Connecting
// --------------------------------------------------------------------------------------------

const std::vector<std::string> kLinkValueKeys = {"role",    "notify",    "listen",     "connect", "join-fd",
                                                 "preset",  "index",     "socket",     "shm",     "timeout",
                                                 "service", "ring-size", "buffer-size"};

/// Brings up a link as the options say: --preset openamp-linux, --listen PATH (create), --connect PATH
/// (join), or --join-fd N (join over an inherited socket; what `demo` uses).
std::unique_ptr<Link> open_link(const Options& o, Role default_role) {
  const Role role = parse_role(o.get("role", default_role == Role::kDriver ? "driver" : "device"));
  const auto timeout = std::chrono::milliseconds(o.number("timeout", 10000, 1, 3600000));
  amp::metal::SysResult<std::unique_ptr<Link>> link = amp::metal::sys_fail(Status::kInvalidArgument, "");
  if (!o.get("preset").empty()) {
    if (o.get("preset") != "openamp-linux") die("the only preset is openamp-linux", 2);
    const long index = o.number("index", role == Role::kDevice ? 0 : 1, 0, 1);
    link = Link::openamp_linux(static_cast<unsigned>(index), role, timeout,
                               o.get("socket", "/tmp/openamp.event.0"), o.get("shm", "openamp.shm"));
  } else {
    LinkConfig cfg;
    cfg.role = role;
    cfg.notify = parse_notify(o.get("notify", "eventfd"));
    cfg.timeout = timeout;
    cfg.ring_size = static_cast<std::uint32_t>(o.number("ring-size", 256, 1, 32768));
    cfg.buffer_size = static_cast<std::uint32_t>(o.number("buffer-size", 512, 24, 65552));
    cfg.posix_shm_name = o.get("shm");
    if (!o.get("listen").empty()) {
      auto listener = amp::metal::UnixListener::listen(o.get("listen"));
      if (!listener) die(listener.error().message);
      auto conn = listener->accept(timeout);
      if (!conn) die("waiting for a peer on " + o.get("listen") + ": " + conn.error().message);
      link = Link::create(std::move(*conn), cfg);
    } else if (!o.get("connect").empty()) {
      auto conn = amp::metal::UnixSocket::connect(o.get("connect"), timeout);
      if (!conn) die(conn.error().message);
      link = Link::join(std::move(*conn), cfg);
    } else if (!o.get("join-fd").empty()) {
      const int fd = static_cast<int>(o.number("join-fd", kJoinFd, 0, 65535));
      link = Link::join(amp::metal::UnixSocket(amp::metal::UniqueFd(fd)), cfg);
    } else {
      die("say how to reach the peer: --listen PATH, --connect PATH, or --preset openamp-linux", 2);
    }
  }
  if (!link) die(link.error().message);
  return std::move(*link);
}

std::string default_service(const Options& o) {
  return o.get("service", o.get("preset") == "openamp-linux" ? kOpenAmpService : kDefaultService);
}

// ---- echo ------------------------------------------------------------------------------------------------

int cmd_echo(const Options& o) {
  auto link = open_link(o, Role::kDevice);
  const std::string service = default_service(o);
  std::atomic<std::uint64_t> echoed{0};
  Endpoint ep;
  const Status s = link->device().create_endpoint(
      ep, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [&](Endpoint& e, const amp::rpmsg::Message& m) {
        std::uint32_t magic = 0;
        if (m.payload.size() == sizeof magic) std::memcpy(&magic, m.payload.data(), sizeof magic);
        if (magic == kShutdownMagic) {
          g_wake.set();
          return;
        }
        if (ok(e.send(m.payload, 1'000'000'000))) ++echoed;
      },
      [](Endpoint&) { g_wake.set(); });  // the peer destroyed its side, or hung up
  if (!ok(s)) die(std::string("creating the echo endpoint: ") + amp::to_string(s));
  if (!o.has("quiet")) {
    std::fprintf(stderr, "ampctl echo: serving '%s' at address %u (%s role, %s)\n", service.c_str(),
                 ep.address(), amp::rpmsg::to_string(link->role()),
                 amp::rpmsg::to_string(link->notify_mode()));
  }
  g_interruptible = true;
  g_wake.wait();  // asleep until the shutdown value, an unbind, a hang-up or a signal
  ep.destroy();
  link->close();
  if (o.has("json")) {
    std::printf("{\"command\":\"echo\",\"service\":%s,\"role\":\"%s\",\"notify\":\"%s\",\"messages\":%llu}\n",
                json_string(service).c_str(), amp::rpmsg::to_string(link->role()),
                amp::rpmsg::to_string(link->notify_mode()), static_cast<unsigned long long>(echoed.load()));
  } else if (!o.has("quiet")) {
    std::fprintf(stderr, "ampctl echo: %llu messages echoed\n",
                 static_cast<unsigned long long>(echoed.load()));
  }
  return 0;
}

// ---- ping / demo -----------------------------------------------------------------------------------------

int cmd_ping(const Options& o) {
  const long rounds = o.number("rounds", 1, 1, 1000000);
  auto link = open_link(o, Role::kDriver);
  const auto t0 = std::chrono::steady_clock::now();
  const Summary s = ping(*link, default_service(o), rounds, o.has("shutdown"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  link->close();
  print_summary("ping", s, secs, o.has("json"), "");
  return s.errors == 0 && s.messages > 0 ? 0 : 1;
}

int cmd_demo(const Options& o) {
  const NotifyMode notify = parse_notify(o.get("notify", "eventfd"));
  const long rounds = o.number("rounds", 1, 1, 1000000);  // check every argument before starting anything
  auto socks = amp::metal::UnixSocket::pair();
  if (!socks) die(socks.error().message);
  const pid_t pid = fork();
  if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // The emulated remote: this same program, serving echo in the device role.
    if (dup2(socks->second.fd(), kJoinFd) < 0) _exit(127);
    std::vector<std::string> args = {
        "ampctl", "echo", "--role", "device", "--join-fd", std::to_string(kJoinFd), "--quiet"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  socks->second = amp::metal::UnixSocket(amp::metal::UniqueFd());
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  cfg.notify = notify;
  auto link = Link::create(std::move(socks->first), cfg);
  if (!link) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    die("bringing up the link to the emulated remote: " + link.error().message);
  }
  if (!o.has("json")) {
    std::printf(
        "amp demo: host (virtio driver) pid %d, emulated remote (virtio device) pid %d, %s notifications\n",
        getpid(), pid, amp::rpmsg::to_string(notify));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Summary s = ping(**link, kDefaultService, rounds, false);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  (*link)->close();
  link->reset();  // hang up: the remote exits
  int status = 0;
  waitpid(pid, &status, 0);
  const bool remote_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  Summary shown = s;
  if (!remote_ok) {
    ++shown.errors;
    if (shown.first_error.empty()) shown.first_error = "the emulated remote did not exit cleanly";
  }
  print_summary("demo", shown, secs, o.has("json"),
                std::string(",\"notify\":\"") + amp::rpmsg::to_string(notify) + "\"");
  return shown.errors == 0 && shown.messages > 0 ? 0 : 1;
}

// ---- Help ------------------------------------------------------------------------------------------------

const char* kUsage = R"(usage: ampctl COMMAND [OPTIONS]

amp's command-line tool: RPMsg between Linux processes, either role, no root or kernel modules.

commands:
  demo    start an emulated remote that serves echo, find it through the name service, send messages of
          every size from 1 byte to the MTU, check every echo, print messages, bytes, round-trip p50/p99
  echo    serve an echo endpoint (stops on the peer's hang-up, its unbind, or OpenAMP's shutdown value)
  ping    find an echo service by name, send messages of every size, check every echo, print a summary
  run     bring a remote up with its firmware (a native firmware, as a process), show the services it
          announces, optionally ping one or echo them, serve until interrupted, recover from crashes
  status, load, start, stop, attach, detach, trace
          the lifecycle (and trace buffers) of remote processors the kernel runs (remoteproc, via sysfs)

run 'ampctl COMMAND --help' for a command's options.
)";

const char* kLinkHelp = R"(how to reach the peer (one of):
  --listen PATH            create the link: wait on a UNIX socket for the peer, then hand it the memory
  --connect PATH           join a link the peer creates on PATH
  --preset openamp-linux   OpenAMP's two-process PC layout: POSIX shm openamp.shm, socket /tmp/openamp.event.0
      --index 0|1          OpenAMP process index (0 = socket server; default: 0 for device, 1 for driver)
      --socket PATH        the socket (default /tmp/openamp.event.0)
link options:
  --role driver|device     virtio role (driver = host, device = remote)
  --notify eventfd|socket|poll|adaptive   notifications (creator decides; default eventfd)
  --shm NAME               a named POSIX shm object instead of a memfd (creator) / the preset's object
  --ring-size N            entries per vring (default 256)     --buffer-size N   bytes per buffer (default 512)
  --timeout MS             set-up timeout (default 10000)
  --service NAME           the echo service's name (default amp-echo; rpmsg-openamp-demo-channel for the preset)
)";

void help(const std::string& cmd) {
  if (ampctl::is_lifecycle_command(cmd)) {
    ampctl::lifecycle_help(cmd);
  } else if (cmd == "run") {
    ampctl::run_help();
  } else if (cmd == "demo") {
    std::printf(
        "usage: ampctl demo [--notify eventfd|socket|poll|adaptive] [--rounds N] [--json]\n\n"
        "Starts an emulated remote process (this program, 'ampctl echo', in the virtio device role) joined "
        "by a\n"
        "memfd and the chosen notifications; the host finds its echo service through the name service, "
        "sends\n"
        "messages of every size from 1 byte to the MTU (N rounds), checks every echo and prints a summary.\n"
        "Exit code 0 when every echo matched.\n");
  } else if (cmd == "echo") {
    std::printf(
        "usage: ampctl echo LINK-OPTIONS [--quiet] [--json]\n\nServes an echo endpoint, announced by name, "
        "until "
        "the peer hangs up,\nunbinds or sends OpenAMP's shutdown value; --json prints what was served as one "
        "object.\n\n%s",
        kLinkHelp);
  } else if (cmd == "ping") {
    std::printf(
        "usage: ampctl ping LINK-OPTIONS [--rounds N] [--shutdown] [--json]\n\n"
        "Finds the echo service, sends messages of every size 1..MTU (N rounds), checks every echo.\n"
        "--shutdown sends OpenAMP's shutdown value at the end.\n\n%s",
        kLinkHelp);
  } else {
    std::fputs(kUsage, stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  watch_signals();
  amp::metal::set_log_level(amp::metal::LogLevel::kError);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    help("");
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      help(cmd);
      return 0;
    }
  }
  if (cmd == "demo") return cmd_demo(parse(argc, argv, 2, {"notify", "rounds"}, {"json"}));
  if (ampctl::is_lifecycle_command(cmd)) return ampctl::run_lifecycle_command(cmd, argc, argv);
  if (cmd == "run") return ampctl::run_command(argc, argv);
  std::vector<std::string> keys = kLinkValueKeys;
  if (cmd == "echo") return cmd_echo(parse(argc, argv, 2, keys, {"quiet", "json"}));
  if (cmd == "ping") {
    keys.push_back("rounds");
    return cmd_ping(parse(argc, argv, 2, keys, {"json", "shutdown"}));
  }
  std::fprintf(stderr, "ampctl: unknown command '%s'\n\n", cmd.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}
