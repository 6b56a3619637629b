// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/linux/vhost_user_server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "amp/metal/linux/bounded_io.hpp"
#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"
#include "amp/rpmsg/linux/runtime_storage.hpp"
#include "amp/virtio/linux/vhost_user_backend.hpp"
#include "amp/virtio/linux/vhost_user_transport.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::rpmsg {

using metal::SourceId;
using metal::sys_fail;
using metal::SysResult;
using metal::UniqueFd;

namespace {

constexpr std::uint32_t kQueues = 2;
// A front end that kicks without end (or gives a semaphore eventfd, which stays readable after each read)
// would keep the server's thread busy. A kick is idle when no queue's available index moved forward since the
// last kick: a working driver kicks only after it made buffers available (and an eventfd folds its kicks into
// one read). After kMaxIdleKicks idle kicks in a row, its kicks are not looked at for kKickPause, doubled for
// each such pause in a row up to kMaxKickPause, so a flood costs a few reads per pause however slow a read is
// (a limit on kicks per unit of time is no limit when each read costs more than its share: a sanitizer's
// build). The first kick that shows work ends the backoff.
constexpr std::uint32_t kMaxIdleKicks = 64;
constexpr std::chrono::milliseconds kKickPause{10};
constexpr std::chrono::milliseconds kMaxKickPause{160};

/// Notifies the front end through each queue's call descriptor: 8 bytes, as to an eventfd. virtio_uml's is
/// one end of a stream socketpair (sent without waiting: a full socket already holds notifications the front
/// end has not read, so one more adds nothing), others' an eventfd (written with a bound, since its
/// O_NONBLOCK flag is the front end's to change). The descriptors are this session's own copies, so a
/// sender on another thread never writes to one that the connection's thread closed.
class CallNotifier final : public Notifier {
 public:
  using FailFn = std::function<void(std::string)>;
  CallNotifier(std::array<UniqueFd, kQueues> fds, FailFn on_failure)
      : fds_(std::move(fds)), on_failure_(std::move(on_failure)) {
    for (std::uint32_t i = 0; i < kQueues; ++i) {
      struct stat st {};
      socket_[i] = fstat(fds_[i].get(), &st) == 0 && S_ISSOCK(st.st_mode);
    }
  }

  Status notify(std::uint32_t notify_id) noexcept override {
    if (notify_id >= kQueues) return Status::kOutOfRange;
    if (failed_.load(std::memory_order_acquire)) return Status::kClosed;  // the connection is ending
    const std::uint64_t one = 1;
    const int fd = fds_[notify_id].get();
    const ssize_t n = socket_[notify_id] ? ::send(fd, &one, sizeof one, MSG_DONTWAIT | MSG_NOSIGNAL)
                                         : metal::bounded_write(fd, &one, sizeof one, metal::kSharedFdLimit);
    if (n == static_cast<ssize_t>(sizeof one)) return Status::kOk;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Status::kOk;  // notifications are pending
    const int err = n < 0 ? errno : EIO;
    if (!failed_.exchange(true, std::memory_order_acq_rel)) {
      on_failure_("writing the call descriptor of queue " + std::to_string(notify_id) + ": " +
                  (err == ETIMEDOUT ? std::string("blocked (the front end interfered with it)")
                   : n >= 0         ? "a short write of " + std::to_string(n) + " bytes"
                                    : std::string(std::strerror(err))));
    }
    return Status::kClosed;
  }

 private:
  std::array<UniqueFd, kQueues> fds_;
  std::array<bool, kQueues> socket_{};
  FailFn on_failure_;
  std::atomic<bool> failed_{false};
};

std::uint64_t offered_features(const VhostUserServerConfig& c) {
  std::uint64_t f = std::uint64_t{1} << kFeatureNs;
  if (c.event_idx) f |= std::uint64_t{1} << virtio::kFeatureEventIdx;
  if (c.version_1) f |= std::uint64_t{1} << virtio::kFeatureVersion1;
  return f;
}

}  // namespace

struct VhostUserServer::Session {
  Session(metal::UnixSocket s, const VhostUserServerConfig& c, std::uint64_t gen)
      : socket(std::move(s)),
        backend(virtio::VhostUserConfig{.device_features = offered_features(c),
                                        .queues = kQueues,
                                        .max_queue_size = c.max_queue_size,
                                        .timeout = c.message_timeout}),
        transport(backend, kVirtioIdRpmsg),
        generation(gen) {}

  metal::UnixSocket socket;
  std::optional<metal::EventFd>
      lost;  // signalled when the guest memory is lost (outlives the memory's guard)
  virtio::VhostUserBackend backend;
  virtio::VhostUserTransport transport;
  std::uint64_t generation;
  std::optional<SourceId> socket_source;
  std::array<std::optional<SourceId>, kQueues> kick_sources;
  std::array<std::uint16_t, kQueues> avail_seen{};    // each queue's available index at the last kick
  std::uint32_t idle_kicks = 0;                       // kicks in a row that showed no work
  std::chrono::milliseconds next_pause = kKickPause;  // how long the next pause of the kicks lasts
  std::optional<SourceId> kick_pause;                 // the timer that looks at the kicks again
  bool kick_flood_said = false;
  std::optional<SourceId> lost_source;
  // While a driver is served (declared in this order so that the device goes first):
  std::unique_ptr<CallNotifier> calls;
  std::unique_ptr<RuntimeStorage> storage;
  std::unique_ptr<Device> device;
};

SysResult<std::unique_ptr<VhostUserServer>> VhostUserServer::listen(const VhostUserServerConfig& config,
                                                                    Callbacks callbacks) {
  if (config.socket_path.empty()) return sys_fail(Status::kInvalidArgument, "vhost-user: no socket path");
  auto listener = metal::UnixListener::listen(config.socket_path);
  if (!listener) return sys_fail(listener.error().status, "vhost-user: " + listener.error().message);
  auto loop = metal::EventLoop::create();
  if (!loop) return sys_fail(loop.error().status, "vhost-user: " + loop.error().message);
  std::unique_ptr<VhostUserServer> s(
      new VhostUserServer(config, std::move(callbacks), std::move(*listener), std::move(*loop)));
  auto src = s->loop_->add_fd(s->listener_.fd(), EPOLLIN, [p = s.get()](std::uint32_t) { p->on_listener(); });
  if (!src) return sys_fail(src.error().status, "vhost-user: " + src.error().message);
  s->listener_source_ = *src;
  s->reschedule_.bind(s->loop_.get(), [p = s.get()] { p->process(); });
  if (const Status st = s->loop_->start_thread(); !ok(st))
    return sys_fail(st, std::string("vhost-user: starting the server's thread: ") + to_string(st));
  return s;
}

VhostUserServer::VhostUserServer(const VhostUserServerConfig& config, Callbacks callbacks,
                                 metal::UnixListener listener, std::unique_ptr<metal::EventLoop> loop)
    : config_(config),
      callbacks_(std::move(callbacks)),
      listener_(std::move(listener)),
      loop_(std::move(loop)) {}

VhostUserServer::~VhostUserServer() {
  stop();
}

void VhostUserServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    // A process() under way on the loop's thread (its callbacks' sends waiting for buffers) gives up at once.
    std::lock_guard lock(live_mutex_);
    if (live_ != nullptr) live_->stop();
  }
  loop_->stop();
  loop_->join();
  // The loop's thread is gone: what it owned is this thread's now.
  if (session_) end_connection("");
  // Stop listening here, as documented, not only when the server is destroyed: the socket file goes now,
  // and a front end that connects from now on is refused instead of waiting in the backlog of a server that
  // will never accept it. (The listener's epoll registration goes with its descriptor; the loop is done.)
  { const metal::UnixListener closed = std::move(listener_); }
  std::lock_guard lock(mutex_);
  changed_.notify_all();
}

VhostUserServer::Counters VhostUserServer::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

bool VhostUserServer::wait_sessions_ended(std::uint64_t ended, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout,
                           [&] { return counters_.sessions_ended >= ended || counters_.done; });
}

bool VhostUserServer::wait_disconnections(std::uint64_t gone, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return counters_.disconnections >= gone; });
}

bool VhostUserServer::wait_sessions_started(std::uint64_t started, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return counters_.sessions_started >= started; });
}

void VhostUserServer::on_listener() {
  auto socket = listener_.accept(std::chrono::milliseconds(0));
  if (!socket) {
    if (socket.error().status == Status::kTimeout) return;
    // Out of descriptors or memory: the listener stays readable, so it rests a while instead of spinning.
    AMP_LOG_WARNING("vhost-user: accepting a front end: %s; trying again in 100 ms",
                    socket.error().message.c_str());
    if (listener_source_ && ok(loop_->disable(*listener_source_))) {
      auto timer = loop_->add_timer(std::chrono::milliseconds(100), std::chrono::nanoseconds(0),
                                    [this](std::uint64_t) {
                                      if (listener_source_) (void)loop_->enable(*listener_source_);
                                      if (listener_timer_) (void)loop_->remove(*listener_timer_);
                                      listener_timer_.reset();
                                    });
      if (timer)
        listener_timer_ = *timer;
      else
        (void)loop_->enable(*listener_source_);
    }
    return;
  }
  // A reply the front end does not read ends the connection after message_timeout instead of blocking the
  // server's thread (and stop()) for as long as it likes.
  const auto ms = config_.message_timeout.count();
  const timeval limit{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  if (::setsockopt(socket->fd(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0) {
    AMP_LOG_ERROR("vhost-user: bounding a front end's socket: %s", std::strerror(errno));
    return;
  }
  if (session_) {
    // vhost-user has one front end per device: the one served keeps it.
    AMP_LOG_WARNING("vhost-user: %s: a second front end connected while one is served; turned away",
                    config_.socket_path.c_str());
    std::lock_guard lock(mutex_);
    ++counters_.turned_away;
    return;  // the socket closes here
  }
  auto session = std::make_unique<Session>(std::move(*socket), config_, ++generation_);
  auto src = loop_->add_fd(session->socket.fd(), EPOLLIN, [this](std::uint32_t) { on_message(); });
  if (!src) {
    AMP_LOG_ERROR("vhost-user: watching a front end's socket: %s", src.error().message.c_str());
    return;
  }
  session->socket_source = *src;
  session_ = std::move(session);
  std::lock_guard lock(mutex_);
  ++counters_.connections;
}

void VhostUserServer::on_message() {
  if (!session_) return;
  Session& s = *session_;
  using Change = virtio::VhostUserBackend::Change;
  // The device stops before the front end is told a queue is off or the session reset: no sender touches
  // rings it already considers its own again.
  auto handled = s.backend.handle(s.socket, [this](const virtio::VhostUserBackend::Handled& h) {
    if (h.change == Change::kQueueDisabled || h.change == Change::kReset) end_session();
  });
  if (!handled) {
    end_connection(handled.error().status == Status::kClosed ? "" : handled.error().message);
    return;
  }
  switch (handled->change) {
    case Change::kQueueEnabled: {
      const std::uint32_t q = handled->queue;
      auto src =
          loop_->add_fd(s.backend.queue(q).kick.get(), EPOLLIN, [this, q](std::uint32_t) { on_kick(q); });
      if (!src) {
        end_connection("watching the kick descriptor of queue " + std::to_string(q) + ": " +
                       src.error().message);
        return;
      }
      s.kick_sources[q] = *src;
      // A queue enabled (again) starts at index 0: what the last session's indexes reached says nothing.
      s.avail_seen[q] = 0;
      s.idle_kicks = 0;
      s.next_pause = kKickPause;
      break;
    }
    case Change::kQueueDisabled: {
      // The driver is going (the kernel disables its queues when it removes the device).
      end_session();
      const std::uint32_t q = handled->queue;
      if (s.kick_sources[q]) (void)loop_->remove(*s.kick_sources[q]);
      s.kick_sources[q].reset();
      break;
    }
    case Change::kMemory: {
      // Watch the new guest memory for being shrunk under us.
      if (s.lost_source) (void)loop_->remove(*s.lost_source);
      s.lost_source.reset();
      if (!s.lost) {
        auto e = metal::EventFd::create_private();
        if (!e) {
          end_connection("an eventfd for the guest memory: " + e.error().message);
          return;
        }
        s.lost.emplace(std::move(*e));
      }
      s.backend.notify_when_memory_lost(s.lost->fd());
      auto src = loop_->add_event_fd(*s.lost, [this](std::uint64_t) { on_memory_lost(); });
      if (!src) {
        end_connection("watching the guest memory: " + src.error().message);
        return;
      }
      s.lost_source = *src;
      break;
    }
    case Change::kReset:
      end_session();
      // Every source on a descriptor the reset closes goes first (epoll keeps a registration of a closed fd
      // the front end still holds, and would report it for ever), then the backend lets go of them.
      for (auto& k : s.kick_sources) {
        if (k) (void)loop_->remove(*k);
        k.reset();
      }
      if (s.lost_source) (void)loop_->remove(*s.lost_source);
      s.lost_source.reset();
      s.backend.reset();
      break;
    case Change::kNone:
      break;
  }
}

void VhostUserServer::on_kick(std::uint32_t queue) {
  if (!session_) return;
  Session& s = *session_;
  std::uint64_t count = 0;
  const ssize_t n =
      metal::read_nowait(s.backend.queue(queue).kick.get(), &count, sizeof count, metal::kSharedFdLimit);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // someone else read it: nothing to do
  if (n != static_cast<ssize_t>(sizeof count)) {
    end_connection("reading the kick descriptor of queue " + std::to_string(queue) + ": " +
                   (n < 0 ? std::string(std::strerror(errno)) : std::to_string(n) + " bytes, not 8"));
    return;
  }
  if (driver_made_buffers_available()) {
    s.idle_kicks = 0;
    s.next_pause = kKickPause;
  } else {
    idle_kick();
  }
  if (!s.device) {
    // No status byte over vhost-user: the first kick with every queue enabled says the driver is ready.
    for (std::uint32_t q = 0; q < kQueues; ++q) {
      if (!s.backend.queue(q).enabled) return;
    }
    if (!start_device()) return;
  }
  process();
}

bool VhostUserServer::driver_made_buffers_available() {
  Session& s = *session_;
  const auto& memory = s.backend.memory();
  if (memory.size() != 1) return false;  // (start_device() refuses that layout)
  const metal::IoRegion region = memory[0].region();
  bool moved = false;
  for (std::uint32_t q = 0; q < kQueues; ++q) {
    const virtio::VhostUserQueue& vq = s.backend.queue(q);
    if (!vq.addressed) continue;
    // The front end's word, read once: compared only, so whatever it holds is harmless. Only a move forward
    // counts (as a 16-bit index does), so an index going back and forth shows no work.
    auto offset = region.offset_of(vq.avail + 2, sizeof(std::uint16_t));
    if (!offset || *offset % alignof(std::uint16_t) != 0) continue;
    auto idx = region.load<std::uint16_t>(*offset);
    if (!idx) continue;
    const auto ahead = static_cast<std::int16_t>(static_cast<std::uint16_t>(*idx - s.avail_seen[q]));
    if (ahead > 0) {
      s.avail_seen[q] = *idx;
      moved = true;
    }
  }
  return moved;
}

void VhostUserServer::idle_kick() {
  Session& s = *session_;
  if (++s.idle_kicks < kMaxIdleKicks || s.kick_pause) return;
  const std::chrono::milliseconds pause = s.next_pause;
  s.next_pause = std::min(pause * 2, kMaxKickPause);
  if (!s.kick_flood_said) {
    s.kick_flood_said = true;
    AMP_LOG_WARNING(
        "vhost-user: %s: the front end kicked %u times in a row without making buffers available; its "
        "kicks are looked at every %lld ms (up to every %lld ms) while it goes on",
        config_.socket_path.c_str(), static_cast<unsigned>(kMaxIdleKicks),
        static_cast<long long>(kKickPause.count()), static_cast<long long>(kMaxKickPause.count()));
  }
  for (const auto& k : s.kick_sources) {
    if (k) (void)loop_->disable(*k);
  }
  {
    std::lock_guard lock(mutex_);
    ++counters_.kick_pauses;
  }
  const std::uint64_t gen = s.generation;
  auto timer = loop_->add_timer(pause, std::chrono::nanoseconds(0), [this, gen](std::uint64_t) {
    if (!session_ || session_->generation != gen) return;  // (its timer went with it)
    Session& now_s = *session_;
    for (const auto& k : now_s.kick_sources) {
      if (k) (void)loop_->enable(*k);
    }
    if (now_s.kick_pause) (void)loop_->remove(*now_s.kick_pause);
    now_s.kick_pause.reset();
    now_s.idle_kicks = 0;
  });
  if (timer) {
    s.kick_pause = *timer;
  } else {
    for (const auto& k : s.kick_sources) {
      if (k) (void)loop_->enable(*k);
    }
  }
}

void VhostUserServer::on_memory_lost() {
  end_connection("the guest memory was lost: the front end shrank its file under us");
}

bool VhostUserServer::start_device() {
  Session& s = *session_;
  const auto& memory = s.backend.memory();
  if (memory.size() != 1) {
    end_connection("the rpmsg device needs the guest memory as one region; the front end shared " +
                   std::to_string(memory.size()));
    return false;
  }
  std::array<UniqueFd, kQueues> fds;
  for (std::uint32_t q = 0; q < kQueues; ++q) {
    fds[q] = UniqueFd(::fcntl(s.backend.queue(q).call.get(), F_DUPFD_CLOEXEC, 0));
    if (!fds[q].valid()) {
      end_connection("copying the call descriptor of queue " + std::to_string(q) + ": " +
                     std::strerror(errno));
      return false;
    }
  }
  const std::uint64_t gen = s.generation;
  s.calls = std::make_unique<CallNotifier>(std::move(fds), [this, gen](std::string why) {
    // From any sending thread: the connection ends on the server's.
    (void)loop_->post([this, gen, why = std::move(why)] {
      if (session_ && session_->generation == gen) end_connection(why);
    });
  });
  s.transport.set_driver_ok();
  std::uint32_t largest = 0;
  for (std::uint32_t q = 0; q < kQueues; ++q) largest = std::max(largest, s.backend.queue(q).num);
  s.storage = std::make_unique<RuntimeStorage>(largest);
  s.device = std::make_unique<Device>();
  DeviceConfig dc;
  dc.role = Role::kDevice;
  dc.shm = memory[0].region();
  dc.transport = &s.transport;
  dc.notifier = s.calls.get();
  dc.buffer_size = config_.buffer_size;
  dc.reschedule = &reschedule_;
  if (const Status st = s.storage->start(*s.device, dc); !ok(st)) {
    const virtio::Fault f = s.device->fault();
    s.device.reset();
    end_connection(std::string("starting the rpmsg device over the front end's queues: ") + to_string(st) +
                   (f != virtio::Fault::kNone ? std::string(" (") + virtio::to_string(f) + ")" : ""));
    return false;
  }
  if (callbacks_.on_ready) callbacks_.on_ready(*s.device);
  // Counted once on_ready has run, as Counters says: whoever wait_sessions_started() wakes may use what
  // on_ready created (counted before it, a waiter could find the endpoints not there yet).
  {
    std::lock_guard lock(live_mutex_);
    live_ = s.device.get();
  }
  {
    std::lock_guard lock(mutex_);
    ++counters_.sessions_started;
  }
  changed_.notify_all();
  return session_ != nullptr;
}

void VhostUserServer::process() {
  if (!session_ || !session_->device || !session_->device->running()) return;
  Device& d = *session_->device;
  if (const Status st = d.process(); st == Status::kBroken) {
    // Rings of zeros are what a guest memory shrunk under us reads (the fault guard mapped them): a runaway
    // index follows. Say that the memory was lost, not that the front end broke the ring protocol, even
    // when the guard's eventfd was not read yet (it is signalled, but this handler runs first).
    const auto& memory = session_->backend.memory();
    if (std::any_of(memory.begin(), memory.end(), [](const metal::SharedMemory& m) { return m.lost(); })) {
      on_memory_lost();
      return;
    }
    end_connection(std::string("the front end broke the ring protocol: ") + virtio::to_string(d.fault()));
  }
}

void VhostUserServer::end_session() {
  if (!session_ || !session_->device) return;
  Session& s = *session_;
  s.device->stop();
  {
    std::lock_guard lock(live_mutex_);
    live_ = nullptr;
  }
  if (callbacks_.on_gone) callbacks_.on_gone(*s.device);
  s.device.reset();
  s.storage.reset();
  s.calls.reset();
  s.transport.reset();
  {
    std::lock_guard lock(mutex_);
    ++counters_.sessions_ended;
  }
  changed_.notify_all();
}

void VhostUserServer::end_connection(std::string why) {
  if (!session_) return;
  if (!why.empty())
    AMP_LOG_ERROR("vhost-user: %s: %s; connection closed", config_.socket_path.c_str(), why.c_str());
  end_session();
  Session& s = *session_;
  for (auto& k : s.kick_sources) {
    if (k) (void)loop_->remove(*k);
  }
  if (s.lost_source) (void)loop_->remove(*s.lost_source);
  if (s.kick_pause) (void)loop_->remove(*s.kick_pause);
  if (s.socket_source) (void)loop_->remove(*s.socket_source);
  session_.reset();
  if (callbacks_.on_disconnected) callbacks_.on_disconnected(why);
  {
    std::lock_guard lock(mutex_);
    ++counters_.disconnections;
    if (!why.empty()) {
      ++counters_.failures;
      counters_.last_error = std::move(why);
    }
    if (!config_.reconnect) counters_.done = true;
  }
  changed_.notify_all();
  if (!config_.reconnect) loop_->stop();
}

}  // namespace amp::rpmsg
