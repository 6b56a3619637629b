// SPDX-License-Identifier: BSD-3-Clause
#include "vhost_user.hpp"

#include <atomic>
#include <cstdio>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include "amp/rpmsg/linux/vhost_user_server.hpp"
#include "signals.hpp"
#include "text.hpp"

namespace ampctl {

namespace {

using amp::Status;
using amp::rpmsg::Device;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Message;

/// What one run served, for the summary; the server's thread adds to it, the main thread reads it at the end.
class Journal {
 public:
  explicit Journal(bool quiet) : quiet_(quiet) {}

  /// One line on stderr (unless quiet) and one event in the JSON summary.
  void event(Json e, const std::string& line) {
    std::lock_guard lock(m_);
    if (!quiet_) std::fprintf(stderr, "ampctl echo: %s\n", printable(line).c_str());
    events_.push_back(std::move(e));
  }
  Json events() const {
    std::lock_guard lock(m_);
    Json j = Json::array();
    for (const Json& e : events_) j.push_back(e);
    return j;
  }

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> echoed{0};
  std::atomic<std::uint64_t> rx_malformed{0};
  std::atomic<std::uint64_t> rx_unroutable{0};

 private:
  bool quiet_;
  mutable std::mutex m_;
  std::vector<Json> events_;
};

/// The endpoints of one session: the announced echo service, and one endpoint per channel the guest
/// announces (RPMSG_CREATE_DEV_IOCTL), which greets it and echoes too.
class EchoSession {
 public:
  EchoSession(Device& device, Journal& journal, std::uint64_t number, const std::string& service)
      : device_(device), journal_(journal), number_(number) {
    const Status s =
        device.create_endpoint(service_, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                               [this](Endpoint& e, const Message& m) { on_message(e, m, true); });
    if (!ok(s)) {
      journal_.event(
          {{"session", number_}, {"event", "error"}, {"what", amp::to_string(s)}},
          "session " + std::to_string(number_) + ": creating the echo endpoint: " + amp::to_string(s));
      return;
    }
    journal_.event({{"session", number_},
                    {"event", "ready"},
                    {"service", json_bytes(service)},
                    {"address", service_.address()},
                    {"event_idx", device.event_idx()}},
                   "session " + std::to_string(number_) + ": the driver is ready; serving '" + service +
                       "' at address " + std::to_string(service_.address()) +
                       (device.event_idx() ? " (event idx)" : " (no event idx)"));
    device.set_name_service_handler(
        [this](Device& d, std::string_view name, std::uint32_t remote) { on_announcement(d, name, remote); });
  }

  ~EchoSession() {
    const amp::rpmsg::Stats st = device_.stats();
    journal_.rx_malformed += st.rx_malformed;
    journal_.rx_unroutable += st.rx_unroutable;
    service_.destroy();
    for (Announced& a : announced_) a.ep.destroy();
    journal_.event({{"session", number_}, {"event", "ended"}, {"received", received_}, {"echoed", echoed_}},
                   "session " + std::to_string(number_) + " ended: " + std::to_string(echoed_) +
                       " messages echoed of " + std::to_string(received_) + " received");
  }
  EchoSession(const EchoSession&) = delete;
  EchoSession& operator=(const EchoSession&) = delete;

 private:
  void on_message(Endpoint& e, const Message& m, bool service) {
    ++received_;
    ++journal_.received;
    if (service && !bound_) {
      // The kernel never answers a remote's announcement: its address comes with its first message.
      bound_ = true;
      journal_.event({{"session", number_}, {"event", "bound"}, {"address", e.address()}, {"peer", m.src}},
                     "session " + std::to_string(number_) + ": address " + std::to_string(e.address()) +
                         " bound to the peer's " + std::to_string(m.src) + " (its first message)");
    }
    if (ok(e.send_to(m.src, m.payload, 1'000'000'000))) {
      ++echoed_;
      ++journal_.echoed;
    }
  }

  void on_announcement(Device& d, std::string_view name, std::uint32_t remote) {
    if (announced_.size() >= kMaxAnnounced) {
      journal_.event({{"session", number_}, {"event", "error"}, {"what", "too many announcements"}},
                     "session " + std::to_string(number_) + ": the peer announced '" + std::string(name) +
                         "' beyond the " + std::to_string(kMaxAnnounced) + " channels served; ignored");
      return;
    }
    Announced& a = announced_.emplace_back();
    a.name = std::string(name);
    a.remote = remote;
    const Status s = d.create_endpoint(
        a.ep, a.name, amp::rpmsg::kAddrAny, remote,
        [this](Endpoint& e, const Message& m) { on_message(e, m, false); },
        [this, &a, &d](Endpoint& e) {
          if (!d.running()) return;  // the session ends: not a withdrawal
          journal_.event({{"session", number_},
                          {"event", "withdrawn"},
                          {"name", json_bytes(a.name)},
                          {"peer", a.remote}},
                         "session " + std::to_string(number_) + ": the peer withdrew '" + a.name + "' at " +
                             std::to_string(a.remote) + " (endpoint " + std::to_string(e.address()) +
                             " unbound)");
        });
    journal_.event({{"session", number_},
                    {"event", "announced"},
                    {"name", json_bytes(a.name)},
                    {"peer", remote},
                    {"address", a.ep.address()},
                    {"status", amp::to_string(s)}},
                   "session " + std::to_string(number_) + ": the peer announced '" + a.name + "' at " +
                       std::to_string(remote) + "; endpoint " + std::to_string(a.ep.address()) + " for it (" +
                       amp::to_string(s) + ")");
    if (!ok(s)) {
      announced_.pop_back();
      return;
    }
    // A channel the guest created with RPMSG_CREATE_DEV_IOCTL has no destination to write to: it can only
    // read. Greet it, so that the guest sees amp answer its announcement.
    const std::string hello = "amp greets '" + a.name + "'";
    (void)a.ep.send(std::as_bytes(std::span(hello.data(), hello.size())), 0);  // never holds the server up
  }

  static constexpr std::size_t kMaxAnnounced = 64;  // the peer's channels served per session
  struct Announced {
    Endpoint ep;
    std::string name;
    std::uint32_t remote = 0;
  };

  Device& device_;
  Journal& journal_;
  std::uint64_t number_;
  Endpoint service_;
  std::list<Announced> announced_;
  bool bound_ = false;
  std::uint64_t received_ = 0;  // the server's thread only
  std::uint64_t echoed_ = 0;
};

}  // namespace

const char* const kVhostUserHelp = R"(serving a virtual machine (instead of the link options):
  --vhost-user SOCKET      be a vhost-user virtio-rpmsg device (virtio id 7) on a UNIX socket: the guest's
                           kernel is the driver and creates a channel from the announcement (--service,
                           default rpmsg-raw: rpmsg_char binds it, /dev/rpmsgN). User-mode Linux:
                           linux ... virtio_uml.device=SOCKET:7 (start ampctl first)
  --no-event-idx           do not offer VIRTIO_RING_F_EVENT_IDX
  --connections N          end after N front ends connected and left (a guest's boot and power-off each;
                           default: serve until SIGINT/SIGTERM)
A guest's announcements (RPMSG_CREATE_DEV_IOCTL) each get an endpoint that greets the channel and echoes.
)";

void add_vhost_user_options(CLI::App& app, VhostUserOptions& o) {
  o.given_socket = add_text(app, "--vhost-user", o.socket, "SOCKET");
  o.given_event_idx = app.add_flag("--no-event-idx", o.no_event_idx);
  o.given_connections = add_number(app, "--connections", o.connections, 1, 1000000);
}

int run_vhost_user_echo(const VhostUserOptions& o, const CommonOptions& common, const std::string& service,
                        bool quiet) {
  Journal journal(quiet || common.json);
  std::list<EchoSession> sessions;  // the one running (the server's thread)
  std::uint64_t count = 0;
  amp::rpmsg::VhostUserServerConfig cfg;
  cfg.socket_path = o.socket;
  cfg.event_idx = !o.no_event_idx;
  amp::rpmsg::VhostUserServer::Callbacks cb;
  cb.on_ready = [&](Device& d) { sessions.emplace_back(d, journal, ++count, service); };
  cb.on_gone = [&](Device&) { sessions.clear(); };
  std::uint64_t gone = 0;
  cb.on_disconnected = [&](const std::string& why) {
    if (!why.empty())
      journal.event({{"event", "disconnected"}, {"error", json_bytes(why)}},
                    "the front end was dropped: " + why);
    if (o.connections > 0 && ++gone >= static_cast<std::uint64_t>(o.connections)) g_wake.set();
  };
  // Interruptible from before the socket file exists: whoever sees it may signal at once, and the answer must
  // be the clean end (summary, socket file removed), not an exit in the middle of setting up.
  set_interruptible(true);
  auto server = amp::rpmsg::VhostUserServer::listen(cfg, std::move(cb));
  if (!server) die(server.error().message);
  if (!quiet && !common.json) {
    std::fprintf(stderr,
                 "ampctl echo: a vhost-user virtio-rpmsg device at %s (event idx %s); waiting for a driver\n",
                 printable(o.socket).c_str(), cfg.event_idx ? "offered" : "not offered");
  }
  g_wake.wait();  // asleep until the sessions asked for ended, or a signal
  (*server)->stop();
  const auto c = (*server)->counters();
  if (common.json) {
    Json j;
    j["command"] = "echo";
    j["transport"] = "vhost-user";
    j["socket"] = json_bytes(o.socket);
    j["service"] = json_bytes(service);
    j["event_idx_offered"] = cfg.event_idx;
    j["connections"] = c.connections;
    j["disconnections"] = c.disconnections;
    j["turned_away"] = c.turned_away;
    j["sessions"] = c.sessions_started;
    j["received"] = journal.received.load();
    j["echoed"] = journal.echoed.load();
    j["rx_malformed"] = journal.rx_malformed.load();
    j["rx_unroutable"] = journal.rx_unroutable.load();
    j["failures"] = c.failures;
    j["last_error"] = json_bytes(c.last_error);
    j["events"] = journal.events();
    j["ended"] = interrupted() ? "interrupted" : "connections";
    print_json(j);
  } else if (!quiet) {
    std::fprintf(
        stderr,
        "ampctl echo: %llu sessions, %llu messages echoed of %llu received; %llu connections ended by "
        "an error%s%s\n",
        static_cast<unsigned long long>(c.sessions_started),
        static_cast<unsigned long long>(journal.echoed.load()),
        static_cast<unsigned long long>(journal.received.load()), static_cast<unsigned long long>(c.failures),
        c.last_error.empty() ? "" : " (last: ",
        c.last_error.empty() ? "" : (printable(c.last_error) + ")").c_str());
  }
  return 0;  // as echo over a link: a signal is how a server is meant to end
}

}  // namespace ampctl
