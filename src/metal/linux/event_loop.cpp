// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include "amp/metal/linux/bounded_io.hpp"
#include "amp/metal/log.hpp"

namespace amp::metal {

enum class EventLoop::Kind : std::uint8_t { kFd, kEventFd, kUio, kTimer, kPost };

struct EventLoop::Source {
  Kind kind = Kind::kFd;
  std::uint64_t id = 0;
  int fd = -1;     // borrowed, or owned_.get() for timers; -1 for posts
  UniqueFd owned;  // the timerfd
  std::uint32_t events = EPOLLIN;
  // Every handler is stored as void(u64): revents, counts and expirations all fit. Only touched by the
  // dispatching thread while in_flight, or under the mutex while not.
  std::function<void(std::uint64_t)> handler;
  // The fields below are guarded by EventLoop::mutex_.
  bool enabled = true;
  bool armed = false;  // registered with epoll
  bool removed = false;
  bool in_flight = false;  // its handler is running on the loop thread
};

namespace {

constexpr std::uint64_t kWakeId = 0;
constexpr int kMaxEvents = 64;

const char* kind_name(int kind) {
  switch (kind) {
    case 0:
      return "fd";
    case 1:
      return "eventfd";
    case 2:
      return "uio";
    case 3:
      return "timer";
    default:
      return "post";
  }
}

/// read(2) retried on EINTR.
ssize_t read_retry(int fd, void* buf, std::size_t n) {
  ssize_t rc;
  do {
    rc = ::read(fd, buf, n);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

/// Writes the 4-byte UIO interrupt control word (1 = unmask, 0 = mask). Returns 0 or an errno.
int write_uio_control(int fd, std::uint32_t value) {
  ssize_t rc;
  do {
    rc = ::write(fd, &value, sizeof value);
  } while (rc < 0 && errno == EINTR);
  if (rc == static_cast<ssize_t>(sizeof value)) return 0;
  return rc < 0 ? errno : EIO;
}

}  // namespace

SysResult<std::unique_ptr<EventLoop>> EventLoop::create() {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return sys_fail("epoll_create1");
  auto wake = EventFd::create_private();
  if (!wake) return Unexpected<SysError>(std::move(wake).error());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, wake->fd(), &ev) < 0)
    return sys_fail("epoll_ctl ADD (wake eventfd)");
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(ep), std::move(*wake)));
}

EventLoop::EventLoop(UniqueFd epoll, EventFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

EventLoop::~EventLoop() {
  if (thread_.joinable()) {
    stop();
    join();
  }
}

// ---- registry ----

SysResult<SourceId> EventLoop::add_source(std::shared_ptr<Source> src) {
  if (!src->handler)
    return sys_fail(Status::kInvalidArgument, std::string("add ") + kind_name(static_cast<int>(src->kind)) +
                                                  " source: the handler is empty");
  std::lock_guard<std::mutex> lk(mutex_);
  src->id = next_id_++;
  if (src->kind != Kind::kPost) {
    epoll_event ev{};
    ev.events = src->events;
    ev.data.u64 = src->id;  // an id, not a pointer: a stale event for a removed source finds nothing
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, src->fd, &ev) < 0) {
      const int err = errno;
      std::string what = std::string("add ") + kind_name(static_cast<int>(src->kind)) +
                         " source: epoll_ctl ADD fd " + std::to_string(src->fd);
      if (err == EEXIST) return sys_fail(what + " (this descriptor is already a source of this loop)", err);
      if (err == EPERM) return sys_fail(what + " (this kind of file cannot be polled)", err);
      return sys_fail(what, err);
    }
    src->armed = true;
  } else {
    posts_.push_back(src->id);
  }
  const auto id = static_cast<SourceId>(src->id);
  sources_.emplace(src->id, std::move(src));
  return id;
}

SysResult<SourceId> EventLoop::add_fd(int fd, std::uint32_t epoll_events,
                                      std::function<void(std::uint32_t revents)> handler) {
  if (fd < 0)
    return sys_fail(Status::kInvalidArgument, "add fd source: invalid descriptor " + std::to_string(fd));
  if ((epoll_events & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE)) != 0) {
    return sys_fail(Status::kInvalidArgument, "add fd source " + std::to_string(fd) +
                                                  ": EPOLLET/EPOLLONESHOT/EPOLLEXCLUSIVE not supported");
  }
  auto src = std::make_shared<Source>();
  src->kind = Kind::kFd;
  src->fd = fd;
  src->events = epoll_events;
  if (handler) {
    src->handler = [h = std::move(handler)](std::uint64_t v) { h(static_cast<std::uint32_t>(v)); };
  }
  return add_source(std::move(src));
}

SysResult<SourceId> EventLoop::add_event_fd(const EventFd& event_fd,
                                            std::function<void(std::uint64_t count)> handler) {
  if (event_fd.fd() < 0)
    return sys_fail(Status::kInvalidArgument, "add eventfd source: the EventFd is empty");
  auto src = std::make_shared<Source>();
  src->kind = Kind::kEventFd;
  src->fd = event_fd.fd();
  src->handler = std::move(handler);
  return add_source(std::move(src));
}

SysResult<SourceId> EventLoop::add_uio(int uio_fd, std::function<void(std::uint32_t irq_count)> handler) {
  if (uio_fd < 0) {
    return sys_fail(Status::kInvalidArgument, "add uio source: invalid descriptor " + std::to_string(uio_fd));
  }
  auto src = std::make_shared<Source>();
  src->kind = Kind::kUio;
  src->fd = uio_fd;
  if (handler) {
    src->handler = [h = std::move(handler)](std::uint64_t v) { h(static_cast<std::uint32_t>(v)); };
  }
  return add_source(std::move(src));
}

SysResult<SourceId> EventLoop::add_timer(std::chrono::nanoseconds first, std::chrono::nanoseconds period,
                                         std::function<void(std::uint64_t expirations)> handler) {
  if (first.count() < 0 || period.count() < 0) {
    return sys_fail(Status::kInvalidArgument, "add timer source: negative first expiry or period");
  }
  if (!handler) return sys_fail(Status::kInvalidArgument, "add timer source: the handler is empty");
  UniqueFd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!tfd) return sys_fail("timerfd_create CLOCK_MONOTONIC");
  const auto to_ts = [](std::chrono::nanoseconds ns) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
    return ts;
  };
  itimerspec spec{};
  // An all-zero it_value would disarm the timer; "at once" is the next nanosecond.
  spec.it_value = to_ts(first.count() == 0 ? std::chrono::nanoseconds(1) : first);
  spec.it_interval = to_ts(period);
  if (::timerfd_settime(tfd.get(), 0, &spec, nullptr) < 0) return sys_fail("timerfd_settime");
  auto src = std::make_shared<Source>();
  src->kind = Kind::kTimer;
  src->fd = tfd.get();
  src->owned = std::move(tfd);
  src->handler = std::move(handler);
  return add_source(std::move(src));
}

SysResult<SourceId> EventLoop::post(std::function<void()> fn) {
  auto src = std::make_shared<Source>();
  src->kind = Kind::kPost;
  if (fn) src->handler = [f = std::move(fn)](std::uint64_t) { f(); };
  auto id = add_source(std::move(src));
  if (id) {
    if (const Status s = wake_.signal(); !ok(s))
      AMP_LOG_ERROR("event loop: post cannot wake the loop: %s", to_string(s));
  }
  return id;
}

void EventLoop::disarm_locked(Source& src) {
  if (!src.armed) return;
  src.armed = false;
  // Fails only if the caller already closed the descriptor (against the rules); nothing more to undo then.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, src.fd, nullptr) < 0) {
    AMP_LOG_WARNING("event loop: epoll_ctl DEL fd %d (source %llu): %s (was it closed before removal?)",
                    src.fd, static_cast<unsigned long long>(src.id), std::strerror(errno));
  }
}

void EventLoop::wait_idle_locked(std::unique_lock<std::mutex>& lock, const Source& src) {
  // On the loop thread the only handler that can be in flight is the caller's own: waiting would deadlock.
  if (dispatching_ == std::this_thread::get_id()) return;
  idle_.wait(lock, [&src] { return !src.in_flight; });
}

Status EventLoop::remove(SourceId sid) {
  const auto id = static_cast<std::uint64_t>(sid);
  std::shared_ptr<Source> src;
  std::function<void(std::uint64_t)>
      doomed;  // destroyed after the lock is released: its captures may call us
  {
    std::unique_lock<std::mutex> lk(mutex_);
    const auto it = sources_.find(id);
    if (it == sources_.end()) return Status::kNotFound;
    src = std::move(it->second);
    sources_.erase(it);
    src->removed = true;
    src->enabled = false;
    disarm_locked(*src);
    if (src->kind == Kind::kPost) std::erase(posts_, id);
    wait_idle_locked(lk, *src);
    // A handler removing itself is still running: it is destroyed with the last reference instead.
    if (!src->in_flight) doomed.swap(src->handler);
  }
  return Status::kOk;
}

Status EventLoop::disable(SourceId sid) {
  const auto id = static_cast<std::uint64_t>(sid);
  std::unique_lock<std::mutex> lk(mutex_);
  const auto it = sources_.find(id);
  if (it == sources_.end()) return Status::kNotFound;
  const std::shared_ptr<Source> src = it->second;
  Status result = Status::kOk;
  if (src->enabled) {
    src->enabled = false;
    disarm_locked(*src);
    if (src->kind == Kind::kPost) std::erase(posts_, id);
    if (src->kind == Kind::kUio) {
      // Mask at the device too. Under the mutex, so the loop's re-arm after a running handler (which checks
      // `enabled` under the same mutex) cannot undo it.
      if (const int err = write_uio_control(src->fd, 0); err != 0) {
        AMP_LOG_ERROR("event loop: uio fd %d: masking the interrupt (write 0): %s", src->fd,
                      std::strerror(err));
        result = status_from_errno(err);
      }
    }
  }
  wait_idle_locked(lk, *src);
  return result;
}

Status EventLoop::enable(SourceId sid) {
  const auto id = static_cast<std::uint64_t>(sid);
  std::lock_guard<std::mutex> lk(mutex_);
  const auto it = sources_.find(id);
  if (it == sources_.end()) return Status::kNotFound;
  Source& src = *it->second;
  if (src.enabled) return Status::kOk;
  if (src.kind == Kind::kPost) {
    src.enabled = true;
    posts_.push_back(id);
    if (const Status s = wake_.signal(); !ok(s)) return s;
    return Status::kOk;
  }
  if (src.kind == Kind::kUio) {
    if (const int err = write_uio_control(src.fd, 1); err != 0) {
      AMP_LOG_ERROR("event loop: uio fd %d: unmasking the interrupt (write 1): %s", src.fd,
                    std::strerror(err));
      return status_from_errno(err);
    }
  }
  epoll_event ev{};
  ev.events = src.events;
  ev.data.u64 = src.id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, src.fd, &ev) < 0) {
    const int err = errno;
    AMP_LOG_ERROR("event loop: enable %s source fd %d: epoll_ctl ADD: %s",
                  kind_name(static_cast<int>(src.kind)), src.fd, std::strerror(err));
    return status_from_errno(err);
  }
  src.armed = true;
  src.enabled = true;
  return Status::kOk;
}

void EventLoop::fail_source(std::uint64_t id, const char* what) {
  std::lock_guard<std::mutex> lk(mutex_);
  const auto it = sources_.find(id);
  if (it == sources_.end()) return;
  Source& src = *it->second;
  AMP_LOG_ERROR("event loop: %s source fd %d: %s; source disabled", kind_name(static_cast<int>(src.kind)),
                src.fd, what);
  src.enabled = false;
  disarm_locked(src);
}

// ---- dispatch ----

bool EventLoop::dispatch(std::uint64_t id, std::uint32_t revents) {
  std::shared_ptr<Source> src;
  {
    std::lock_guard<std::mutex> lk(mutex_);
    const auto it = sources_.find(id);
    // Gone, or disabled by an earlier handler of this batch.
    if (it == sources_.end() || !it->second->enabled) return false;
    src = it->second;
    src->in_flight = true;
  }
  bool rearm = false;  // UIO: unmask once the handler is done
  // Clears the in-flight marker even if the handler throws, so remove()/disable() cannot hang.
  struct Finish {
    EventLoop& loop;
    Source& src;
    bool& rearm;
    ~Finish() {
      std::lock_guard<std::mutex> lk(loop.mutex_);
      if (rearm && src.enabled && !src.removed) {
        if (const int err = write_uio_control(src.fd, 1); err != 0) {
          AMP_LOG_ERROR("event loop: uio fd %d: re-enabling the interrupt (write 1): %s; source disabled",
                        src.fd, std::strerror(err));
          src.enabled = false;
          loop.disarm_locked(src);
        }
      }
      if (src.kind == Kind::kPost) loop.sources_.erase(src.id);  // one-shot
      src.in_flight = false;
      loop.idle_.notify_all();
    }
  } finish{*this, *src, rearm};

  switch (src->kind) {
    case Kind::kFd:
      src->handler(revents);
      return true;
    case Kind::kPost:
      src->handler(0);
      return true;
    case Kind::kEventFd:
    case Kind::kTimer: {
      std::uint64_t count = 0;
      // An eventfd may be shared with another process, which could have made it blocking: never wait.
      const ssize_t n = src->kind == Kind::kEventFd
                            ? read_nowait(src->fd, &count, sizeof count, kSharedFdLimit)
                            : read_retry(src->fd, &count, sizeof count);
      if (n == static_cast<ssize_t>(sizeof count)) {
        if (count == 0) return false;
        src->handler(count);
        return true;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;  // another reader was faster
      const std::string what =
          n < 0 && errno == ETIMEDOUT
              ? std::string("read blocked: another process sharing it cleared O_NONBLOCK")
          : n < 0 ? std::string("read: ") + std::strerror(errno)
                  : "short read of " + std::to_string(n) + " bytes (expected 8)";
      fail_source(id, what.c_str());
      return false;
    }
    case Kind::kUio: {
      std::uint32_t irq_count = 0;
      const ssize_t n = read_retry(src->fd, &irq_count, sizeof irq_count);
      if (n == static_cast<ssize_t>(sizeof irq_count)) {
        rearm = true;
        src->handler(irq_count);
        return true;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      const std::string what = n < 0    ? std::string("read: ") + std::strerror(errno)
                               : n == 0 ? std::string("end of file (device gone?)")
                                        : "short read of " + std::to_string(n) + " bytes (expected 4)";
      fail_source(id, what.c_str());
      return false;
    }
  }
  return false;
}

int EventLoop::run_posts() {
  std::deque<std::uint64_t> batch;
  {
    std::lock_guard<std::mutex> lk(mutex_);
    batch.swap(posts_);
  }
  int ran = 0;
  for (const std::uint64_t id : batch) {
    if (dispatch(id, 0)) ++ran;
  }
  return ran;
}

SysResult<int> EventLoop::poll(std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lk(mutex_);
    if (dispatching_ != std::thread::id()) {
      return sys_fail(Status::kBusy, dispatching_ == std::this_thread::get_id()
                                         ? "event loop poll: called from one of its own handlers"
                                         : "event loop poll: another thread is polling this loop");
    }
    dispatching_ = std::this_thread::get_id();
  }
  struct Done {
    EventLoop& loop;
    ~Done() {
      std::lock_guard<std::mutex> lk(loop.mutex_);
      loop.dispatching_ = std::thread::id();
    }
  } done{*this};

  int ms = -1;
  if (timeout.count() >= 0) ms = timeout.count() > INT_MAX ? INT_MAX : static_cast<int>(timeout.count());
  epoll_event events[kMaxEvents];
  const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return sys_fail("epoll_wait");
  }
  int ran = 0;
  for (int i = 0; i < n; ++i) {
    const epoll_event& ev = events[i];
    if (ev.data.u64 == kWakeId) {
      auto drained = wake_.consume();
      if (!drained) AMP_LOG_ERROR("event loop: %s", drained.error().what().c_str());
      ran += run_posts();
    } else {
      if (dispatch(ev.data.u64, ev.events)) ++ran;
    }
  }
  return ran;
}

// ---- driving ----

Status EventLoop::run() {
  for (;;) {
    if (stop_requested_.exchange(false, std::memory_order_acq_rel)) return Status::kOk;
    auto r = poll(std::chrono::milliseconds(-1));
    if (!r) {
      AMP_LOG_ERROR("event loop run: %s", r.error().what().c_str());
      return r.error().status;
    }
  }
}

void EventLoop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (const Status s = wake_.signal(); !ok(s))
    AMP_LOG_ERROR("event loop stop: cannot wake the loop: %s", to_string(s));
}

Status EventLoop::start_thread() {
  if (thread_.joinable()) return Status::kBusy;
  try {
    thread_ = std::thread([this] { (void)run(); });
  } catch (const std::system_error& e) {
    AMP_LOG_ERROR("event loop: cannot start its thread: %s", e.what());
    return Status::kNoMemory;
  }
  return Status::kOk;
}

void EventLoop::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

}  // namespace amp::metal
