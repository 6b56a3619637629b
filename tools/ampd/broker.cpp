// SPDX-License-Identifier: BSD-3-Clause
#include "broker.hpp"

#include <grp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>

#include "amp/metal/log.hpp"

namespace amp::ampd {

namespace proto = client::protocol;
using metal::SysError;
using metal::SysResult;

namespace {

constexpr std::size_t kMaxClients = 1024;
/// Endpoints open through ampd at once, all clients together.
constexpr std::size_t kMaxEndpoints = 65536;
constexpr std::size_t kMaxEndpointsPerClient = 1024;
constexpr std::size_t kMaxWaitsPerClient = 64;
/// Packets taken from one client's control socket per wake-up.
constexpr int kRequestBatch = 8;

/// Whether the peer of `fd` has hung up: an empty read is then the end rather than an empty packet. The
/// event that woke the handler may predate the hang-up, so the socket is asked again.
bool hung_up(int fd, std::uint32_t revents) {
  if ((revents & (EPOLLHUP | EPOLLRDHUP)) != 0) return true;
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

struct Broker::Remote {
  std::uint32_t index = 0;
  RemoteConfig config;
  std::vector<std::byte> firmware;
  std::unique_ptr<rproc::ProcessRemote> process;
  // Guarded by the broker's mutex_ (the remote's threads change them).
  rpmsg::Link* link = nullptr;
  std::map<std::string, std::uint32_t> services;  // announced: name -> address
  // One endpoint bound to each announced service, so that its withdrawal (which unbinds the endpoints
  // bound to it) is heard.
  struct Watcher {
    std::string name;
    std::uint32_t addr = 0;
    rpmsg::Endpoint endpoint;
  };
  std::map<std::string, std::unique_ptr<Watcher>> watchers;
};

struct Broker::Client {
  metal::UnixSocket socket{metal::UniqueFd()};
  Credentials cred;
  metal::SourceId source{};
  bool greeted = false;
  std::size_t opened = 0;  // endpoints opened through this connection and not ended yet
};

/// An endpoint ampd opened for a client. It lives as long as the client's descriptor (as /dev/rpmsgN outlives
/// the /dev/rpmsg_ctrl descriptor that created it), not as long as the connection it was asked for on.
struct Broker::Open {
  Remote* remote = nullptr;
  Credentials owner;
  Client* client = nullptr;  // the connection that opened it, while it lasts
  std::shared_ptr<EndpointRelay> relay;
};

struct Broker::Wait {
  Client* client = nullptr;
  std::uint32_t id = 0;
  Remote* remote = nullptr;
  std::string name;
  metal::SourceId timer{};
};

// ---------------------------------------------------------------------------------------------------------
// Set-up and teardown

Broker::Broker(Config config, std::unique_ptr<metal::EventLoop> loop)
    : config_(std::move(config)),
      policy_(config_.rules, ::geteuid()),
      socket_path_(config_.socket.empty() ? default_socket_path() : config_.socket),
      loop_(std::move(loop)) {}

SysResult<std::unique_ptr<Broker>> Broker::create(Config config) {
  auto loop = metal::EventLoop::create();
  if (!loop) return Unexpected<SysError>(loop.error());
  std::unique_ptr<Broker> b(new Broker(std::move(config), std::move(*loop)));
  for (std::size_t i = 0; i < b->config_.remotes.size(); ++i) {
    auto r = std::make_unique<Remote>();
    r->index = static_cast<std::uint32_t>(i);
    r->config = b->config_.remotes[i];
    std::ifstream in(r->config.firmware, std::ios::binary);
    if (!in) return metal::sys_fail("remote '" + r->config.name + "': open " + r->config.firmware);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) return metal::sys_fail("remote '" + r->config.name + "': read " + r->config.firmware);
    r->firmware.resize(bytes.size());
    if (!bytes.empty()) std::memcpy(r->firmware.data(), bytes.data(), bytes.size());
    b->remotes_.push_back(std::move(r));
  }
  return b;
}

Broker::~Broker() {
  {
    std::lock_guard lock(mutex_);
    loop_running_ = false;
  }
  // The loop has stopped: end every endpoint here, before the remotes (and their Devices) go.
  while (!clients_.empty()) drop_client(*clients_.begin()->second, "ampd is stopping");
  for (auto& [key, open] : endpoints_) open.relay->end();
  endpoints_.clear();
  endpoint_count_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    relays_gone_ = true;
  }
  gone_cv_.notify_all();
  for (auto& r : remotes_) {
    if (r->process) (void)r->process->stop();
  }
  remotes_.clear();
}

SysResult<void> Broker::start() {
  for (auto& rp : remotes_) {
    Remote& r = *rp;
    rproc::ProcessConfig pc;
    pc.name = r.config.firmware;
    pc.args = r.config.args;
    pc.link.notify = r.config.notify;
    r.process = std::make_unique<rproc::ProcessRemote>(pc);
    r.process->set_recovery(r.config.recovery);
    r.process->on_link_up([this, &r](rpmsg::Link& link) { on_link_up(r, link); });
    r.process->on_link_down([this, &r](rpmsg::Link&) { on_link_down(r); });
    if (auto s = r.process->start(r.firmware); !s) {
      // Not fatal: the other remotes are served, and clients see this one's state.
      AMP_LOG_ERROR("ampd: remote '%s' (%s) did not start: %s", r.config.name.c_str(),
                    base_name(r.config.firmware).c_str(), s.error().message.c_str());
    } else {
      AMP_LOG_INFO("ampd: remote '%s' runs %s", r.config.name.c_str(), base_name(r.config.firmware).c_str());
    }
  }
  auto l = metal::UnixListener::listen(socket_path_, 64, metal::SocketKind::kSeqPacket);
  if (!l) return Unexpected<SysError>(l.error());
  listener_.emplace(std::move(*l));
  if (socket_path_[0] != '@') {
    if (::chmod(socket_path_.c_str(), config_.socket_mode) != 0)
      return metal::sys_fail("chmod " + socket_path_);
    if (config_.socket_group &&
        ::chown(socket_path_.c_str(), static_cast<uid_t>(-1), *config_.socket_group) != 0) {
      return metal::sys_fail("chown " + socket_path_);
    }
  }
  auto src = loop_->add_fd(listener_->fd(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
  if (!src) return Unexpected<SysError>(src.error());
  listen_src_ = *src;
  AMP_LOG_INFO("ampd: listening on %s", socket_path_.c_str());
  return {};
}

Status Broker::run() {
  {
    std::lock_guard lock(mutex_);
    loop_running_ = true;
  }
  const Status s = loop_->run();
  {
    std::lock_guard lock(mutex_);
    loop_running_ = false;
  }
  return s;
}

void Broker::stop() {
  loop_->stop();
}

std::size_t Broker::client_count() const {
  return client_count_.load(std::memory_order_relaxed);
}

std::optional<pid_t> Broker::remote_pid(std::uint32_t index) const {
  if (index >= remotes_.size() || !remotes_[index]->process) return std::nullopt;
  const pid_t pid = remotes_[index]->process->driver().pid();
  if (pid <= 0) return std::nullopt;
  return pid;
}

// ---------------------------------------------------------------------------------------------------------
// The remotes' side (their threads)

void Broker::on_link_up(Remote& r, rpmsg::Link& link) {
  {
    std::lock_guard lock(mutex_);
    r.link = &link;
  }
  AMP_LOG_INFO("ampd: remote '%s': rpmsg is up (MTU %u)", r.config.name.c_str(),
               static_cast<unsigned>(link.device().payload_size()));
  link.device().set_name_service_handler([this, &r](rpmsg::Device&, std::string_view name,
                                                    std::uint32_t addr) { on_announcement(r, name, addr); });
}

void Broker::on_announcement(Remote& r, std::string_view name, std::uint32_t addr) {
  const std::string n(name);
  std::unique_ptr<Remote::Watcher> old;
  {
    std::lock_guard lock(mutex_);
    if (r.link == nullptr) return;
    r.services[n] = addr;
    auto w = std::make_unique<Remote::Watcher>();
    w->name = n;
    w->addr = addr;
    Remote::Watcher* wp = w.get();
    const Status s = r.link->device().create_endpoint(
        w->endpoint, n, rpmsg::kAddrAny, addr, nullptr, [this, &r, wp](rpmsg::Endpoint&) {
          // The service was withdrawn (or the link is closing): forget it, and the watcher on the loop
          // thread (not from inside its own callback). The watcher lives until then.
          {
            std::lock_guard services_lock(mutex_);
            if (auto it = r.services.find(wp->name); it != r.services.end() && it->second == wp->addr) {
              r.services.erase(it);
            }
          }
          (void)loop_->post([this, &r, wp] {
            std::unique_ptr<Remote::Watcher> gone;
            std::lock_guard watchers_lock(mutex_);
            for (auto it = r.watchers.begin(); it != r.watchers.end(); ++it) {
              if (it->second.get() != wp) continue;
              gone = std::move(it->second);
              r.watchers.erase(it);
              break;
            }
          });
        });
    if (ok(s)) {
      old = std::move(r.watchers[n]);  // a watcher of an earlier announcement: destroyed unlocked, below
      r.watchers[n] = std::move(w);
    } else {
      AMP_LOG_WARNING("ampd: remote '%s': cannot watch service '%s': %s", r.config.name.c_str(), n.c_str(),
                      to_string(s));
    }
  }
  old.reset();
  AMP_LOG_INFO("ampd: remote '%s' announced '%s' at %u", r.config.name.c_str(), n.c_str(),
               static_cast<unsigned>(addr));
  (void)loop_->post([this] { complete_waits(); });
}

void Broker::on_link_down(Remote& r) {
  std::map<std::string, std::unique_ptr<Remote::Watcher>> watchers;
  bool loop_running = false;
  {
    std::lock_guard lock(mutex_);
    r.link = nullptr;
    r.services.clear();
    watchers.swap(r.watchers);
    loop_running = loop_running_;
  }
  watchers.clear();  // destroyed while their Device still exists (the link closes after this returns)
  AMP_LOG_INFO("ampd: remote '%s': rpmsg is down; its endpoints end", r.config.name.c_str());
  if (!loop_running) {
    // Before run(), or after it: no loop thread to hand the work to, and nobody else touches the clients
    // then, except the destructor, which ends them all before it stops the remotes.
    std::unique_lock lock(mutex_);
    if (relays_gone_) return;
    lock.unlock();
    end_remote_endpoints(r);
    return;
  }
  // The endpoints belong to the loop thread: have it end them, and wait, since the Device goes when this
  // returns. The loop never waits for a remote's thread, so this is short; if the loop stops meanwhile, the
  // destructor ends them instead.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  if (!loop_->post([this, &r, done] {
        end_remote_endpoints(r);
        done->set_value();
      })) {
    return;
  }
  while (f.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    std::unique_lock lock(mutex_);
    if (!loop_running_) {
      gone_cv_.wait(lock, [this] { return relays_gone_; });
      return;
    }
  }
}

void Broker::end_remote_endpoints(Remote& r) {
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    if (it->second.remote != &r) {
      ++it;
      continue;
    }
    it->second.relay->end();  // the client reads end of file; writes get EPIPE
    forget(it->second);
    it = endpoints_.erase(it);
  }
  endpoint_count_.store(endpoints_.size(), std::memory_order_relaxed);
}

void Broker::forget(Open& open) {
  if (open.client != nullptr && clients_.count(open.client) != 0) --open.client->opened;
}

// ---------------------------------------------------------------------------------------------------------
// Clients (the loop thread)

void Broker::on_accept() {
  auto s = listener_->accept(std::chrono::milliseconds(0));
  if (!s) {
    if (s.error().status != Status::kTimeout && s.error().status != Status::kWouldBlock) {
      AMP_LOG_WARNING("ampd: accept: %s", s.error().message.c_str());
    }
    return;
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(s->fd(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    AMP_LOG_WARNING("ampd: a client without credentials (SO_PEERCRED: %s): refused", std::strerror(errno));
    return;
  }
  if (clients_.size() >= kMaxClients) {
    AMP_LOG_WARNING("ampd: refused a client (pid %d): %zu clients already", static_cast<int>(cred.pid),
                    clients_.size());
    return;
  }
  if (const Status st = s->set_nonblocking(true); !ok(st)) return;
  auto c = std::make_unique<Client>();
  c->socket = std::move(*s);
  c->cred = {cred.pid, cred.uid, cred.gid};
  Client* cp = c.get();
  auto src = loop_->add_fd(cp->socket.fd(), EPOLLIN | EPOLLRDHUP,
                           [this, cp](std::uint32_t revents) { on_client_readable(*cp, revents); });
  if (!src) {
    AMP_LOG_WARNING("ampd: cannot watch a client: %s", src.error().message.c_str());
    return;
  }
  cp->source = *src;
  clients_.emplace(cp, std::move(c));
  client_count_.store(clients_.size(), std::memory_order_relaxed);
  AMP_LOG_DEBUG("ampd: client pid %d (uid %u) connected", static_cast<int>(cred.pid),
                static_cast<unsigned>(cred.uid));
}

void Broker::on_client_readable(Client& c, std::uint32_t revents) {
  for (int i = 0; i < kRequestBatch; ++i) {
    std::byte packet[proto::kMaxMessage + 1];
    const ssize_t n = ::recv(c.socket.fd(), packet, sizeof packet, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      drop_client(c, std::string("reading its socket: ") + std::strerror(errno));
      return;
    }
    if (n == 0 && hung_up(c.socket.fd(), revents)) {
      drop_client(c, "it hung up");
      return;
    }
    std::uint32_t id = 0;
    if (n >= static_cast<ssize_t>(proto::kHeaderSize)) std::memcpy(&id, packet + 4, 4);
    const std::size_t size = std::min(static_cast<std::size_t>(n), sizeof packet);
    auto m = proto::decode(std::span(packet, size));
    if (!m) {
      AMP_LOG_DEBUG("ampd: client pid %d sent a malformed request (%zd bytes)", static_cast<int>(c.cred.pid),
                    n);
      reply(c, id, Status::kMalformed);
    } else {
      handle(c, *m);
    }
    if (clients_.count(&c) == 0) return;  // dropped while answering
  }
}

void Broker::handle(Client& c, const proto::Message& m) {
  if (m.type == proto::Type::kHello) {
    if (m.min_version <= proto::kVersion && proto::kVersion <= m.max_version) {
      c.greeted = true;
      reply(c, m.id, Status::kOk, proto::kVersion);
    } else {
      reply(c, m.id, Status::kNotSupported);
    }
    return;
  }
  if (!c.greeted) {
    reply(c, m.id, Status::kInvalidArgument);  // kHello comes first
    return;
  }
  switch (m.type) {
    case proto::Type::kList:
      handle_list(c, m);
      return;
    case proto::Type::kWait:
      handle_wait(c, m);
      return;
    case proto::Type::kOpen:
      handle_open(c, m, false);
      return;
    case proto::Type::kCreate:
      handle_open(c, m, true);
      return;
    default:  // what only ampd sends
      reply(c, m.id, Status::kInvalidArgument);
      return;
  }
}

void Broker::handle_list(Client& c, const proto::Message& m) {
  if (m.remote != proto::kAllRemotes && m.remote >= remotes_.size()) {
    reply(c, m.id, Status::kNotFound);
    return;
  }
  for (auto& rp : remotes_) {
    Remote& r = *rp;
    if (m.remote != proto::kAllRemotes && m.remote != r.index) continue;
    if (!policy_.may_see(c.cred, r.config.name)) continue;
    proto::Message rm;
    rm.type = proto::Type::kRemote;
    rm.id = m.id;
    rm.remote = r.index;
    rm.state = static_cast<std::uint32_t>(r.process ? r.process->state() : rproc::State::kOffline);
    rm.name = *proto::Name::from(r.config.name);  // checked at configuration: under 32 bytes
    if (!send(c, rm)) return;
    std::map<std::string, std::uint32_t> services;
    {
      std::lock_guard lock(mutex_);
      services = r.services;
    }
    for (const auto& [name, addr] : services) {
      proto::Message sm;
      sm.type = proto::Type::kService;
      sm.id = m.id;
      sm.remote = r.index;
      sm.dst = addr;
      sm.name = *proto::Name::from(name);  // an rpmsg name: under 32 bytes
      if (!send(c, sm)) return;
    }
  }
  reply(c, m.id, Status::kOk);
}

void Broker::handle_wait(Client& c, const proto::Message& m) {
  if (m.remote >= remotes_.size()) {
    reply(c, m.id, Status::kNotFound);
    return;
  }
  Remote& r = *remotes_[m.remote];
  if (!policy_.may_see(c.cred, r.config.name)) {
    reply(c, m.id, Status::kPermissionDenied);
    return;
  }
  const std::size_t waits = static_cast<std::size_t>(
      std::count_if(waits_.begin(), waits_.end(), [&](const auto& w) { return w->client == &c; }));
  if (waits >= kMaxWaitsPerClient) {
    reply(c, m.id, Status::kNoMemory);
    return;
  }
  auto w = std::make_unique<Wait>();
  w->client = &c;
  w->id = m.id;
  w->remote = &r;
  w->name = std::string(m.name.view());
  Wait* wp = w.get();
  waits_.push_back(std::move(w));
  complete_waits();  // at once if it is announced already
  if (std::none_of(waits_.begin(), waits_.end(), [&](const auto& x) { return x.get() == wp; })) return;
  auto timer = loop_->add_timer(
      std::chrono::milliseconds(m.timeout_ms), std::chrono::nanoseconds(0), [this, wp](std::uint64_t) {
        auto it = std::find_if(waits_.begin(), waits_.end(), [&](const auto& x) { return x.get() == wp; });
        if (it == waits_.end()) return;
        std::unique_ptr<Wait> done = std::move(*it);
        waits_.erase(it);
        (void)loop_->remove(done->timer);
        reply(*done->client, done->id, Status::kTimeout);
      });
  if (!timer) {
    waits_.pop_back();
    reply(c, m.id, Status::kNoMemory);
    return;
  }
  wp->timer = *timer;
}

void Broker::complete_waits() {
  for (std::size_t i = 0; i < waits_.size();) {
    Wait& w = *waits_[i];
    std::optional<std::uint32_t> addr;
    {
      std::lock_guard lock(mutex_);
      if (auto it = w.remote->services.find(w.name); it != w.remote->services.end()) addr = it->second;
    }
    if (!addr) {
      ++i;
      continue;
    }
    std::unique_ptr<Wait> done = std::move(waits_[i]);
    waits_.erase(waits_.begin() + static_cast<std::ptrdiff_t>(i));
    if (done->timer != metal::SourceId{}) (void)loop_->remove(done->timer);
    proto::Message sm;
    sm.type = proto::Type::kService;
    sm.id = done->id;
    sm.remote = done->remote->index;
    sm.dst = *addr;
    sm.name = *proto::Name::from(done->name);
    if (send(*done->client, sm)) reply(*done->client, done->id, Status::kOk);
    i = 0;  // a dropped client took its other waits with it: look again from the start
  }
}

void Broker::handle_open(Client& c, const proto::Message& m, bool create) {
  if (m.remote >= remotes_.size()) {
    reply(c, m.id, Status::kNotFound);
    return;
  }
  Remote& r = *remotes_[m.remote];
  if (c.opened >= kMaxEndpointsPerClient || endpoints_.size() >= kMaxEndpoints) {
    reply(c, m.id, Status::kNoMemory);
    return;
  }
  const std::string name(m.name.view());
  const std::string& rname = r.config.name;
  std::uint32_t dst = rpmsg::kAddrAny;
  rpmsg::Link* link = nullptr;
  {
    std::lock_guard lock(mutex_);
    link = r.link;
    if (!create && !name.empty()) {
      auto it = r.services.find(name);
      if (it != r.services.end()) dst = it->second;
    }
  }
  if (link == nullptr) {
    reply(c, m.id, Status::kClosed);  // the remote does not run (or rpmsg is not up yet)
    return;
  }
  bool allowed = true;
  if (create) {
    allowed = policy_.may_create(c.cred, rname, name);
  } else if (!name.empty()) {
    if (dst == rpmsg::kAddrAny) {
      reply(c, m.id, Status::kNotFound);  // not announced (now)
      return;
    }
    if (m.dst != rpmsg::kAddrAny && m.dst != dst) {
      reply(c, m.id, Status::kInvalidArgument);  // a name and another address
      return;
    }
    allowed = policy_.may_open_service(c.cred, rname, name);
  } else {
    dst = m.dst;
    allowed = policy_.may_open_address(c.cred, rname, dst);
  }
  // A chosen local address is as much the client's to claim as the peer's.
  if (m.local != rpmsg::kAddrAny) allowed = allowed && policy_.may_open_address(c.cred, rname, m.local);
  if (!allowed) {
    AMP_LOG_INFO("ampd: client pid %d (uid %u) may not %s '%s' on '%s'", static_cast<int>(c.cred.pid),
                 static_cast<unsigned>(c.cred.uid), create ? "create" : "open",
                 name.empty() ? std::to_string(dst).c_str() : name.c_str(), rname.c_str());
    reply(c, m.id, Status::kPermissionDenied);
    return;
  }
  const pid_t pid = c.cred.pid;
  auto relay =
      EndpointRelay::open(*loop_, link->device(), name, m.local, create ? rpmsg::kAddrAny : dst,
                          [this, pid](EndpointRelay& e, const std::string& why) {
                            AMP_LOG_INFO("ampd: client pid %d: endpoint %u ended: %s", static_cast<int>(pid),
                                         static_cast<unsigned>(e.local()), why.c_str());
                            // Forget it after this handler (it runs inside the relay).
                            EndpointRelay* ep = &e;
                            (void)loop_->post([this, ep] {
                              auto it = endpoints_.find(ep);
                              if (it == endpoints_.end()) return;
                              forget(it->second);
                              endpoints_.erase(it);
                              endpoint_count_.store(endpoints_.size(), std::memory_order_relaxed);
                            });
                          });
  if (!relay) {
    reply(c, m.id, relay.error().status);
    return;
  }
  std::shared_ptr<EndpointRelay> rl = std::move(*relay);
  endpoints_[rl.get()] = Open{&r, c.cred, &c, rl};
  endpoint_count_.store(endpoints_.size(), std::memory_order_relaxed);
  ++c.opened;
  reply(c, m.id, Status::kOk, rl->mtu(), rl->local(), rl->remote(), rl->client_socket().fd());
  rl->client_socket() = metal::UnixSocket(metal::UniqueFd());  // the client has it now
}

bool Broker::send(Client& c, const proto::Message& m, int fd) {
  std::byte packet[proto::kMaxMessage];
  auto n = proto::encode(m, packet);
  if (!n) return false;  // cannot happen: every message ampd makes is well formed
  const int fds[1] = {fd};
  auto sent =
      c.socket.send(std::span(packet, *n), fd >= 0 ? std::span<const int>(fds) : std::span<const int>());
  if (!sent) {
    drop_client(c, sent.error().status == Status::kWouldBlock ? "it does not read its replies"
                                                              : "writing to it: " + sent.error().message);
    return false;
  }
  return true;
}

void Broker::reply(Client& c, std::uint32_t id, Status s, std::uint32_t value, std::uint32_t local,
                   std::uint32_t remote, int fd) {
  proto::Message r;
  r.type = proto::Type::kReply;
  r.id = id;
  r.status = s;
  r.value = value;
  r.local = local;
  r.dst = remote;
  (void)send(c, r, fd);
}

void Broker::drop_client(Client& c, const std::string& why) {
  auto owned = clients_.find(&c);
  if (owned == clients_.end()) return;
  AMP_LOG_DEBUG("ampd: client pid %d gone (%s); %zu endpoints it opened stay while their descriptors do",
                static_cast<int>(c.cred.pid), why.c_str(), c.opened);
  for (auto& [key, open] : endpoints_) {
    if (open.client == &c) open.client = nullptr;
  }
  for (auto it = waits_.begin(); it != waits_.end();) {
    if ((*it)->client != &c) {
      ++it;
      continue;
    }
    if ((*it)->timer != metal::SourceId{}) (void)loop_->remove((*it)->timer);
    it = waits_.erase(it);
  }
  (void)loop_->remove(c.source);
  std::unique_ptr<Client> gone = std::move(owned->second);
  clients_.erase(owned);
  client_count_.store(clients_.size(), std::memory_order_relaxed);
}

}  // namespace amp::ampd
