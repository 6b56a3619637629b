// SPDX-License-Identifier: BSD-3-Clause
#include "link_options.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>

#include "signals.hpp"

namespace ampctl {

namespace {

using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;
using std::chrono::milliseconds;

constexpr const char* kDefaultService = "amp-echo";
constexpr const char* kOpenAmpService = "rpmsg-openamp-demo-channel";
/// The handshake once the peer is there, when the wait for the peer has no limit.
constexpr milliseconds kHandshakeTimeout{10000};

/// Serves on a new listening socket at `path`: waits for a peer (for `timeout`, or without a limit) and
/// creates the link with it; a client that leaves without joining (a probe, a stray client) does not end
/// the wait (Link::accept). The wait wakes on a signal (ending with 128 + N), and the listener's destructor
/// removes the socket file on every way out: a peer, a timeout, a signal.
std::unique_ptr<Link> serve_on(const std::string& path, std::optional<milliseconds> timeout,
                               const LinkConfig& cfg) {
  auto listener = amp::metal::UnixListener::listen(path);
  if (!listener) die(listener.error().message);
  set_interruptible(true);  // a signal during a handshake is taken when it ends (it is bounded)
  auto link = Link::accept(*listener, cfg, timeout.value_or(amp::rpmsg::kWaitForever), interrupt_fd());
  if (interrupted())
    throw Failure{"interrupted while waiting for a peer on " + path, interrupted_exit_code(), true};
  set_interruptible(false);
  if (!link) die(link.error().message);
  return std::move(*link);
}

/// Connects to the peer's socket at `path`, retrying while nobody listens there yet: for `timeout`, or
/// as long as it takes.
amp::metal::UnixSocket connect_to_peer(const std::string& path, std::optional<milliseconds> timeout) {
  auto conn = amp::metal::UnixSocket::connect(path, timeout.value_or(amp::rpmsg::kWaitForever));
  if (!conn) die(conn.error().message);
  return std::move(*conn);
}

/// --timeout MS, or 0 / forever.
void parse_timeout(const std::string& s, std::optional<milliseconds>& out) {
  if (s == "forever" || s == "0") {
    out.reset();
    return;
  }
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0' || v < 1 || v > 3600000) {
    usage_error(
        "--timeout wants milliseconds in [1, 3600000], or 0 or forever to wait for the peer as long as "
        "it takes, not '" +
        s + "'");
  }
  out = milliseconds(v);
}

}  // namespace

const char* const kLinkOptionsHelp = R"(how to reach the peer (one of):
  --listen PATH            create the link: wait on a UNIX socket for the peer, then hand it the memory
  --connect PATH           join a link the peer creates on PATH
  --preset openamp-linux   OpenAMP's two-process PC layout: POSIX shm openamp.shm, socket /tmp/openamp.event.0,
                           one byte on the socket per kick, 256-entry rings, 512-byte buffers (fixed: not
                           with --notify, --ring-size or --buffer-size)
      --index 0|1          OpenAMP process index (0 = socket server; default: 0 for device, 1 for driver)
      --socket PATH        the socket (default /tmp/openamp.event.0)
link options:
  --role driver|device     virtio role (driver = host, device = remote)
  --notify eventfd|socket|poll|adaptive   notifications (the creator's choice: --listen; default eventfd)
  --shm NAME               a named POSIX shm object instead of a memfd (--listen) / the preset's object
  --ring-size N            entries per vring (default 256)     --buffer-size N   bytes per buffer (default 512)
                           (--ring-size, --buffer-size: the creator's choice, --listen; the buffer size,
                           a multiple of 8 in [24, 65544], is declared in the vdev's config space and taken
                           by the driver through the VIRTIO_RPMSG_F_BUFSZ negotiation)
  --timeout MS|forever     how long to wait for the peer (default 10000; 0 or forever: as long as it takes;
                           the set-up after it arrived stays bounded: 10000 then)
  --service NAME           the echo service's name (default amp-echo; rpmsg-openamp-demo-channel for the preset)
  -v, --verbose            amp's warnings on stderr (a dropped malformed message...); twice: debug messages too
)";

CLI::Option* add_notify_option(CLI::App& app, NotifyMode& mode) {
  return add_choice<NotifyMode>(app, "--notify", mode,
                                {{"eventfd", NotifyMode::kEventFd},
                                 {"socket", NotifyMode::kSocket},
                                 {"poll", NotifyMode::kPoll},
                                 {"adaptive", NotifyMode::kAdaptive}},
                                "eventfd, socket, poll or adaptive");
}

void add_link_options(CLI::App& app, LinkOptions& o, Role role) {
  o.role = role;
  auto& g = o.given;
  add_choice<Role>(app, "--role", o.role,
                   {{"driver", Role::kDriver},
                    {"host", Role::kDriver},
                    {"device", Role::kDevice},
                    {"remote", Role::kDevice}},
                   "driver (host) or device (remote)");
  g.notify = add_notify_option(app, o.notify);
  g.listen = add_text(app, "--listen", o.listen, "PATH");
  g.connect = add_text(app, "--connect", o.connect, "PATH");
  g.join_fd = add_number(app, "--join-fd", o.join_fd, 0, 65535);
  g.preset = add_choice<std::string>(app, "--preset", o.preset, {{"openamp-linux", "openamp-linux"}},
                                     "openamp-linux (the only preset)");
  g.index = add_number(app, "--index", o.index, 0, 1);
  g.socket = add_text(app, "--socket", o.socket, "PATH");
  g.shm = add_text(app, "--shm", o.shm, "NAME");
  g.ring_size = add_number(app, "--ring-size", o.ring_size, 1, 32768);
  g.buffer_size = add_number(app, "--buffer-size", o.buffer_size, 24, 65544);
  add_parsed(app, "--timeout", "MS|forever", [&o](const std::string& s) { parse_timeout(s, o.timeout); });
  add_text(app, "--service", o.service, "NAME");
}

void check_link_options(const LinkOptions& o) {
  const auto& g = o.given;
  const std::string one_way = "give one way to reach the peer";
  refuse_together(g.listen, g.connect, one_way);
  refuse_together(g.join_fd, g.listen, one_way);
  refuse_together(g.join_fd, g.connect, one_way);
  const std::string preset_says = "the preset says where the peer is (its socket: --socket)";
  refuse_together(g.preset, g.listen, preset_says);
  refuse_together(g.preset, g.connect, preset_says);
  refuse_together(g.preset, g.join_fd, preset_says);
  if (given(g.preset)) {
    refuse_given(
        {g.notify, g.ring_size, g.buffer_size},
        "--preset openamp-linux fixes it (one byte on the socket per kick, 256-entry rings, 512-byte "
        "buffers): leave it out");
    return;
  }
  refuse_given({g.index, g.socket}, "only for --preset openamp-linux");
  if (!given(g.listen) && !given(g.connect) && !given(g.join_fd))
    usage_error("say how to reach the peer: --listen PATH, --connect PATH, or --preset openamp-linux");
  if (given(g.connect) || given(g.join_fd)) {
    refuse_given({g.notify, g.ring_size, g.buffer_size, g.shm},
                 "the side that creates the link (--listen) chooses it; the joining side takes the peer's");
  }
}

std::unique_ptr<Link> open_link(const LinkOptions& o) {
  if (!o.preset.empty()) {
    amp::rpmsg::OpenAmpLinuxConfig cfg;
    cfg.index = static_cast<unsigned>(o.index >= 0 ? o.index : (o.role == Role::kDevice ? 0 : 1));
    cfg.role = o.role;
    cfg.timeout = o.timeout.value_or(kHandshakeTimeout);
    cfg.peer_wait = o.timeout.value_or(amp::rpmsg::kWaitForever);
    cfg.socket_path = o.socket;
    if (!o.shm.empty()) cfg.shm_name = o.shm;
    auto link = Link::openamp_linux(cfg);
    if (!link) die(link.error().message);
    return std::move(*link);
  }
  LinkConfig cfg;
  cfg.role = o.role;
  cfg.notify = o.notify;
  cfg.timeout = o.timeout.value_or(kHandshakeTimeout);
  cfg.ring_size = static_cast<std::uint32_t>(o.ring_size);
  cfg.buffer_size = static_cast<std::uint32_t>(o.buffer_size);
  cfg.posix_shm_name = o.shm;
  if (!o.listen.empty()) return serve_on(o.listen, o.timeout, cfg);
  auto link =
      !o.connect.empty()
          ? Link::join(connect_to_peer(o.connect, o.timeout), cfg)
          : Link::join(amp::metal::UnixSocket(amp::metal::UniqueFd(static_cast<int>(o.join_fd))), cfg);
  if (!link) die(link.error().message);
  return std::move(*link);
}

std::string service_name(const LinkOptions& o) {
  if (!o.service.empty()) return o.service;
  return o.preset.empty() ? kDefaultService : kOpenAmpService;
}

}  // namespace ampctl
